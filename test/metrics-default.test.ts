/**
 * The exporter's own metrics (prom-client's defaults, as serve registers them), with the two
 * costs an exporter holding thousands of fds must not pay on every scrape: process_open_fds
 * is counted at most once a minute, and it is registered once (ours, not prom-client's too).
 */
import * as fs from 'node:fs';
import t from 'tap';
import * as client from 'prom-client';
import { createMetrics } from '../src/metrics';
import { parseText } from './helpers/prometheus';

const linux = process.platform === 'linux' ? false : 'prom-client counts open fds on Linux only';

t.test('process_open_fds: the real count, counted again at most once a minute', { skip: linux }, async (t) => {
  const registry = new client.Registry();
  createMetrics({ registry, defaultMetrics: true });
  const read = async (): Promise<number> => {
    const scraped = parseText(await registry.metrics());
    t.equal(scraped.text.match(/^# TYPE process_open_fds /gm)?.length, 1, 'one process_open_fds family');
    return Number(scraped.value('process_open_fds'));
  };
  const before = fs.readdirSync('/proc/self/fd').length - 1;
  const first = await read();
  t.ok(Math.abs(first - before) <= 2, `the count (${first}) is the number of open fds (${before})`);
  const extra = Array.from({ length: 20 }, () => fs.openSync(__filename, 'r'));
  t.teardown(() => extra.forEach((fd) => fs.closeSync(fd)));
  t.equal(await read(), first, 'a scrape within the minute does not list /proc/self/fd again');
  t.match(await registry.metrics(), /# HELP process_open_fds Number of open file descriptors \(counted at most once a minute\)\./);
  t.match(await registry.metrics(), /^nodejs_eventloop_lag_seconds /m, 'the other default metrics are there');

  // A minute later (the clock moved on), the next scrape counts again.
  const now = Date.now();
  const clock = t.capture(Date, 'now', () => now + 61_000);
  t.ok((await read()) >= first + 20, 'counted again after a minute, with the 20 new fds');
  clock.restore();
});
