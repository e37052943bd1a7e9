/**
 * A busy loop under CPU contention is still a busy loop, and a thread that is runnable but
 * does not get a CPU is starved: real spinners pinned to one CPU, so each gets a share of
 * it and waits for the rest (schedstat's run delay).
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { compare } from '../src/analyze';
import { proc, snap, start, thread } from './helpers/analyze';
import type { Target } from './helpers/targets';
import { monotonicNs } from '../src/sample';
import { waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test targets are Linux programs';
const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

t.test('three spinners on one CPU: each wanted it the whole time; starved, not missed', { skip: linux || (!hasTaskset && 'taskset (util-linux) is not installed') }, async (t) => {
  const spinners: Target[] = [];
  for (let i = 0; i < 3; i++) {
    const target = await start(t, 'spin');
    execFileSync('taskset', ['-p', '-c', '0', String(target.pid)], { stdio: 'ignore' });
    spinners.push(target);
  }
  const pids = spinners.map((s) => s.pid);
  const take = async () => {
    const s = await (await import('../src/sample')).snapshot({ pids, accelerators: false });
    return s.processes.length === 3 && s.processes.every((p) => p.threads[0]?.runDelayNs !== undefined) && s;
  };
  const healthy = await waitFor(take, 'the three spinners sampled');
  await waitFor(() => monotonicNs() - healthy.monotonicNs >= 1500 * 1e6, '1.5 s to pass', 20000, 20);
  const hung = (await take()) || (await waitFor(take, 'the second sample'));
  const report = compare(healthy, hung, { stallMs: 1000 });
  for (const pid of pids) {
    const found = report.findings.filter((f) => f.ref.pid === pid);
    t.equal(found.length, 1, `pid ${pid}: one finding (${JSON.stringify(found.map((f) => f.message))})`);
    t.match(found[0]!.kind, /^(spinning|starved)$/, 'a busy loop is seen under contention');
  }
  // Three on one CPU each get about a third of it: the others wait for most of the window.
  t.ok(report.findings.some((f) => f.kind === 'starved'), 'at least one is starved');
  const starved = report.findings.find((f) => f.kind === 'starved');
  if (starved) t.match(starved.message, /waited .* \(\d+%\) for a CPU and ran .* \(\d+%\)/);
  t.not(report.verdict, 'hung', 'a thread that wants a CPU is never hung (a third of one each, less when the machine is loaded: a warning only below 2 %)');
});

t.test('synthetic: 55% on CPU and 45% waiting is spinning with the wait told; 30% and 70% is starved', async (t) => {
  const at = (ms: number, cpu: number, wait: number) => snap(ms, [proc(100, [thread(100, { state: 'running', cpuNs: cpu, runDelayNs: wait })])]);
  const spin = compare(at(0, 0, 0), at(2000, 1.1e9, 0.9e9), { stallMs: 1000 });
  t.match(spin.findings, [{ kind: 'spinning', severity: 'info', message: /busy: 1\.1 s of CPU in 2\.0 s \(55%\) and 900 ms \(45%\) waiting for a CPU/ }]);
  const starved = compare(at(0, 0, 0), at(2000, 0.6e9, 1.4e9), { stallMs: 1000 });
  t.match(starved.findings, [{ kind: 'starved', severity: 'info', message: /waited 1\.4 s \(70%\) for a CPU and ran 600 ms \(30%\)/ }]);
  t.equal(starved.verdict, 'healthy', 'it runs 30 % of the time: slow, not stuck');
  const loaded = compare(at(0, 0, 0), at(2000, 0.1e9, 1.9e9), { stallMs: 1000 });
  t.match(loaded.findings, [{ kind: 'starved', severity: 'info', message: /waited 1\.9 s \(95%\) for a CPU and ran 100 ms \(5%\)/ }], 'a busy thread on a loaded machine');
  const hardly = compare(at(0, 0, 0), at(2000, 0.02e9, 1.98e9), { stallMs: 1000 });
  t.match(hardly.findings, [{ kind: 'starved', severity: 'warning', message: /waited 2\.0 s \(99%\) for a CPU and ran 20 ms \(1%\)/ }]);
  t.equal(hardly.verdict, 'suspect', 'it hardly runs at all');
  const none = compare(at(0, 0, 0), at(2000, 0.6e9, 0.2e9), { stallMs: 1000 });
  t.same(none.findings.filter((f) => f.kind === 'spinning' || f.kind === 'starved'), [], 'a thread that wanted a CPU 40% of the time is neither');
});
