/**
 * Real processes in known states for the tests (see test/targets/target.c), and
 * a poller to wait for a state without sleeping a fixed time.
 *
 *   const target = await startTarget('deadlock');
 *   t.teardown(() => target.stop());
 *   const sample = await waitFor(async () => {
 *     const s = await sampleThreads(target.pid);
 *     return s.threads.filter((th) => th.blockedIn?.call === 'futex').length >= 2 && s;
 *   }, 'both deadlocked threads in futex');
 *
 * The target is compiled once per test process with `cc -O1 -pthread` into a
 * cache directory under os.tmpdir(), keyed by a hash of its source, so parallel
 * test processes share one binary and an edited source builds a new one.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

export type TargetMode =
  | 'sleep'
  | 'fifo-reader'
  | 'deadlock'
  | 'spin'
  | 'threads'
  | 'rename'
  | 'vfork-parent'
  | 'epoll-idle'
  | 'poll-idle'
  | 'zombie'
  | 'orphan-fifo-reader'
  | 'join-sleeper'
  | 'fifo-opener'
  | 'latin1-names'
  | 'tick';

export interface Target {
  /** The target process (for vfork-parent and zombie, the parent). */
  pid: number;
  /** The key=value pairs of its ready line: pid, and what the mode made (a, b, tid, child, zombie, fd, port…). */
  info: Record<string, string>;
  child: ChildProcess;
  /** SIGKILL (and SIGCONT, should it be stopped), then reap. Safe to call twice. */
  stop(): Promise<void>;
}

const SOURCE = path.join(__dirname, '..', 'targets', 'target.c');
const READY_TIMEOUT_MS = 20000;

const built = new Map<string, Promise<string>>();

/**
 * The path of the compiled target, building it on first use. `m32`: a 32-bit build
 * (`cc -m32`: i386 on x86_64; needs gcc-multilib), for the tests of 32-bit processes.
 */
export function targetBinary(variant: 'native' | 'm32' = 'native'): Promise<string> {
  let binary = built.get(variant);
  if (binary === undefined) {
    binary = build(variant === 'm32' ? ['-m32'] : []);
    built.set(variant, binary);
  }
  return binary;
}

async function build(flags: string[]): Promise<string> {
  return buildC(SOURCE, 'target', flags);
}

/**
 * `cc -pthread FLAGS SOURCE` into the cache directory (keyed by the source, the arch
 * and the flags; -O1 unless FLAGS name another -O), building on first use.
 */
export async function buildC(source: string, name: string, flags: string[], after?: (binary: string) => Promise<void>): Promise<string> {
  const text = await fs.promises.readFile(source);
  const hash = createHash('sha256').update(text).update(process.arch).update(flags.join(' ')).update(String(after)).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'iokit-snap-targets', hash);
  const binary = path.join(dir, name);
  if (fs.existsSync(binary)) return binary;
  await fs.promises.mkdir(dir, { recursive: true });
  // Build beside, then rename: another test process may be building the same hash.
  const partial = `${binary}.${process.pid}.tmp`;
  const cc = process.env.CC ?? 'cc';
  const all = [...(flags.some((f) => f.startsWith('-O')) ? [] : ['-O1']), '-pthread', ...flags];
  try {
    await promisify(execFile)(cc, [...all, '-o', partial, source]);
    if (after !== undefined) await after(partial);
  } catch (error) {
    throw new Error(`cannot build the test target with \`${cc} ${all.join(' ')} ${source}\`: ${(error as Error).message}`);
  }
  await fs.promises.rename(partial, binary);
  return binary;
}

function parseReady(line: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const pair of line.trim().split(/\s+/).slice(1)) {
    const at = pair.indexOf('=');
    if (at > 0) info[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return info;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Start `target MODE ARGS…` and resolve once it prints its ready line. */
export async function startTarget(mode: TargetMode, args: string[] = [], variant: 'native' | 'm32' = 'native'): Promise<Target> {
  const binary = await targetBinary(variant);
  const child = spawn(binary, [mode, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const info = await new Promise<Record<string, string>>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`target ${mode} did not print its ready line within ${READY_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, READY_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const line = stdout.split('\n').find((l) => l.startsWith('ready'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(parseReady(line));
      }
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`target ${mode} exited (${signal ?? code}) before it was ready; stderr: ${stderr}`));
    });
  });
  child.stdout!.resume();
  const pid = child.pid!;
  let stopping: Promise<void> | undefined;
  return {
    pid,
    info,
    child,
    stop() {
      stopping ??= (async () => {
        // A vfork child lives on after its parent: it goes too.
        for (const extra of [info.child]) {
          if (extra !== undefined) {
            try {
              process.kill(Number(extra), 'SIGKILL');
            } catch {
              /* already gone */
            }
          }
        }
        if (exited(child)) return;
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        child.kill('SIGCONT');
        await gone;
      })();
      return stopping;
    },
  };
}

/** startTarget, stopped in `t`'s teardown. */
export async function start(t: { teardown(fn: () => unknown): void }, ...args: Parameters<typeof startTarget>): Promise<Target> {
  const target = await startTarget(...args);
  t.teardown(() => target.stop());
  return target;
}

type Falsy = undefined | null | false;

/**
 * Poll `probe` every `intervalMs` until it returns something truthy, and
 * return that. A probe that throws is retried; after `timeoutMs` this fails
 * with a message naming `what`, the last value and the last error.
 */
export async function waitFor<T>(
  probe: () => Promise<T | Falsy> | T | Falsy,
  what: string,
  timeoutMs = 20000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError !== undefined ? `; last error: ${(lastError as Error)?.message ?? String(lastError)}` : `; last value: ${String(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
