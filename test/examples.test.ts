/**
 * examples/: the Prometheus scrape config and alert rules parse as YAML and have the shape
 * Prometheus reads; every metric the rules name exists in a live scrape of `serve`; the
 * systemd unit and the launchd plist are well-formed, and the command each starts is one
 * `iokit-snap serve` accepts (run here, on a free port).
 */
import t, { type Test } from 'tap';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import plist from 'plist';
import { parse as parseYaml } from 'yaml';
import { startMetricsServer } from '../src/metrics';
import { runCli, type CliStreams } from './helpers/cli';
import { scrape } from './helpers/prometheus';
import { start, waitFor } from './helpers/targets';

const EXAMPLES = path.join(__dirname, '..', 'examples');
const read = (name: string) => fs.readFileSync(path.join(EXAMPLES, name), 'utf8');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rules = (): Rule[] => (parseYaml(read('iokit-snap-alerts.yml'), { strict: true }) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

t.test('the scrape config: YAML Prometheus reads, pointing at serve and at the rules file', async (t) => {
  const config = parseYaml(read('prometheus.yml'), { strict: true }) as {
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  t.same(config.rule_files, ['iokit-snap-alerts.yml']);
  t.ok(fs.existsSync(path.join(EXAMPLES, config.rule_files[0])), 'the rules file is beside it');
  const job = config.scrape_configs.find((c) => c.job_name === 'iokit-snap')!;
  t.same(job.static_configs[0].targets, ['127.0.0.1:9464'], "serve's default address");
});

t.test('three alert rules: a process hung for 2 minutes, an accelerator recovery, a selector that selects nothing', async (t) => {
  const byName = new Map(rules().map((r) => [r.alert, r]));
  t.same([...byName.keys()].sort(), ['AcceleratorRecovered', 'ProcessHung', 'SelectorSelectsNothing']);
  t.match(byName.get('SelectorSelectsNothing')!.expr, /iokit_snap_selector_processes == 0/);
  t.equal(byName.get('ProcessHung')!.for, '2m');
  t.match(byName.get('ProcessHung')!.expr, /iokit_snap_process_verdict == 2/);
  t.match(byName.get('AcceleratorRecovered')!.expr, /increase\(iokit_snap_accelerator_recoveries_total\[\d+m\]\) > 0/);
  for (const rule of byName.values()) t.ok(rule.annotations?.summary, `${rule.alert} has a summary`);
});

t.test('every metric the rules name exists in a live scrape of serve', { skip: process.platform === 'linux' ? false : 'a Linux target' }, async (t) => {
  const idle = await start(t, 'epoll-idle');
  const server = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    pids: [idle.pid],
    intervalMs: 100,
    sysRoot: path.join(__dirname, 'fixtures', 'sys', 'amd-workstation'),
    nvmlLibrary: '/nonexistent/libnvidia-ml.so.1',
  });
  t.teardown(() => server.close());
  const live = await waitFor(async () => {
    const s = await scrape(`${server.url}/metrics`);
    return (s.value('iokit_snap_samples_total') ?? 0) >= 1 && s;
  }, 'a sample');
  const named = new Set(rules().flatMap((r) => r.expr.match(/\biokit_snap_[a-z0-9_]+/g) ?? []));
  t.ok(named.size >= 2);
  for (const name of named) t.ok(live.families.has(name), `${name} is exported`);
  t.equal(live.value('iokit_snap_process_verdict', { pid: String(idle.pid) }), 0);
});

/** The command line a unit starts, as words (systemd's ExecStart= without quoting, which this one does not need). */
function serveArgs(words: string[]): string[] {
  const at = words.indexOf('serve');
  t.ok(at >= 0, 'it runs iokit-snap serve');
  // Run on a free loopback port instead of the real one.
  return words.slice(at).map((w, i, all) => (all[i - 1] === '--listen' ? '127.0.0.1:0' : w));
}

async function runsAsServe(t: Test, args: string[]): Promise<void> {
  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  const run = runCli([...args, '--no-accelerators'], {}, false, signals, (s) => (streams = s));
  await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+\/metrics/.test(streams!.stdout()), `serve to start with ${args.join(' ')}`);
  signals.emit('SIGTERM');
  const result = await run;
  t.equal(result.code, 0, `${args.join(' ')} is accepted`);
}

t.test('the systemd unit: sections and keys systemd reads, and a command serve accepts', async (t) => {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const [i, raw] of read('iokit-snap.service').split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([A-Za-z]+)\]$/.exec(line);
    if (section) {
      sections.set(section[1], (current = new Map()));
      continue;
    }
    const pair = /^([A-Za-z]+)=(.*)$/.exec(line);
    t.ok(pair && current, `line ${i + 1} is Key=Value inside a section: ${line}`);
    if (pair && current) current.set(pair[1], pair[2]);
  }
  t.same([...sections.keys()], ['Unit', 'Service', 'Install']);
  t.equal(sections.get('Install')!.get('WantedBy'), 'multi-user.target');
  await runsAsServe(t, serveArgs(sections.get('Service')!.get('ExecStart')!.split(/\s+/)));
});

t.test('the launchd plist: a well-formed property list launchd reads, and a command serve accepts', async (t) => {
  const job = plist.parse(read('com.github.iokit-snap.serve.plist')) as { Label: string; ProgramArguments: string[]; RunAtLoad: boolean };
  t.equal(job.Label, 'com.github.iokit-snap.serve');
  t.equal(job.RunAtLoad, true);
  t.match(job.ProgramArguments[0], /iokit-snap$/);
  // The parser (xmldom) also prints the error it throws: kept out of the test output, and checked.
  const printed = t.capture(console, 'error', () => undefined);
  t.throws(() => plist.parse(read('com.github.iokit-snap.serve.plist').replace('</dict>', '')), 'the parser does reject a broken plist');
  printed.restore();
  t.match(printed.args().flat().join(' '), /fatalError.*tag mismatch/, 'what it printed is that error');
  await runsAsServe(t, serveArgs(job.ProgramArguments));
});
