/**
 * Ending a worker_thread that uses the addon must never crash the process, with
 * the addon loaded only in workers (ending the last one unloads it while probe
 * threads still run its code) or in the main thread too (a probe that finishes
 * as its environment ends must not touch the thread-safe function Node deletes).
 * Each configuration runs in a child process (test/helpers/worker-termination.js),
 * so a crash fails this test instead of the runner: many rounds of four workers,
 * one per native API, terminated inside their probes after 300–1800 ms, then one
 * whose probe is stuck for certain and runs on after the worker is gone.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..');
const ROUNDS = Number(process.env.IOKIT_SNAP_WORKER_ROUNDS ?? 8);

function run(where: 'workers' | 'main'): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'helpers', 'worker-termination.js'), ROOT, String(ROUNDS), where], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

if (process.platform === 'linux') {
  for (const where of ['workers', 'main'] as const) {
    t.test(`${ROUNDS} rounds of workers terminated inside probes (addon loaded ${where === 'main' ? 'in the main thread too' : 'only in workers'})`, async (t) => {
      const { code, signal, out } = await run(where);
      t.same({ code, signal }, { code: 0, signal: null }, `the process survived; its output: ${out.slice(-2000)}`);
      t.match(out, /^ok \d+ probes$/m);
    });
  }
} else {
  // The stuck probe needs a fixture procRoot, which only the Linux backend reads.
  t.plan(0, 'Linux only: the stuck probe reads a fixture procRoot');
}
