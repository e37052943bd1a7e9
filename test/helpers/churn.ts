/**
 * The thread-churn target (test/targets/churn.c): a process whose threads are
 * created, renamed and joined all the time. Built once per test process, like
 * target.c (see targets.ts), into a cache directory keyed by its source hash.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const SOURCE = path.join(__dirname, '..', 'targets', 'churn.c');
const READY_TIMEOUT_MS = 20000;

let built: Promise<string> | undefined;

async function build(): Promise<string> {
  const source = await fs.promises.readFile(SOURCE);
  const hash = createHash('sha256').update(source).update(process.arch).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'iokit-snap-targets', hash);
  const binary = path.join(dir, 'churn');
  if (fs.existsSync(binary)) return binary;
  await fs.promises.mkdir(dir, { recursive: true });
  const partial = `${binary}.${process.pid}.tmp`;
  await promisify(execFile)(process.env.CC ?? 'cc', ['-O1', '-pthread', '-o', partial, SOURCE]);
  await fs.promises.rename(partial, binary);
  return binary;
}

export interface Churn {
  pid: number;
  child: ChildProcess;
  /** SIGKILL, then reap. Safe to call twice. */
  stop(): Promise<void>;
}

/** Starts `churn THREADS` and resolves once its first round of threads has run. */
export async function startChurn(threads = 16): Promise<Churn> {
  built ??= build();
  const child = spawn(await built, [String(threads)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`churn did not get ready within ${READY_TIMEOUT_MS} ms`));
    }, READY_TIMEOUT_MS);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`churn exited (${signal ?? code}) before it was ready`));
    });
  });
  child.stdout!.resume();
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid!,
    child,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await gone;
      })();
      return stopping;
    },
  };
}
