/**
 * test/targets/stacks.c in its builds, started either as a child of the test process
 * or as a grandchild (under `sh`), since a child's main thread is never stopped (a
 * ptrace stop would be seen by Node's own waitpid on its children).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { buildC, waitFor } from './targets';

const SOURCE = path.join(__dirname, '..', 'targets', 'stacks.c');
const run = promisify(execFile);

/**
 * fp: frame pointers (-fno-omit-frame-pointer) and unwind tables, as the target.
 * cfi: -O2 -fomit-frame-pointer: only the unwind tables (.eh_frame) lead out.
 * bare: no frame pointers and no unwind tables: the walk cannot leave the target's code.
 * debuglink: the fp build stripped, its symbols in a separate file named by .gnu_debuglink.
 */
export type StacksBuild = 'fp' | 'cfi' | 'bare' | 'debuglink';

const FLAGS: Record<StacksBuild, string[]> = {
  fp: ['-O1', '-fno-omit-frame-pointer'],
  cfi: ['-O2', '-fomit-frame-pointer'],
  bare: ['-O2', '-fomit-frame-pointer', '-fno-asynchronous-unwind-tables', '-fno-unwind-tables'],
  debuglink: ['-O1', '-fno-omit-frame-pointer'],
};

async function splitDebug(binary: string): Promise<void> {
  // The symbols go to <name>.debug beside it; the binary keeps only a link to that file.
  const debug = `${binary.replace(/\.\d+\.tmp$/, '')}.debug`;
  await run('objcopy', ['--only-keep-debug', binary, debug]);
  await run('objcopy', ['--strip-all', '--add-gnu-debuglink=' + debug, binary]);
}

const built = new Map<StacksBuild, Promise<string>>();
export function stacksBinary(build: StacksBuild): Promise<string> {
  let binary = built.get(build);
  if (binary === undefined) {
    binary = buildC(SOURCE, 'stacks', FLAGS[build], build === 'debuglink' ? splitDebug : undefined);
    built.set(build, binary);
  }
  return binary;
}

export interface StacksTarget {
  pid: number;
  spinner: number;
  sleeper: number;
  /** Everything it printed so far. */
  output(): string;
  /** The spawned process: the target itself, or the `sh` above it. */
  child: ChildProcess;
  /** Writes a line to its fifo and waits for its "got" answer: it runs on. */
  echo(line: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startStacksTarget(
  t: { teardown(fn: () => unknown): void },
  build: StacksBuild,
  placement: 'child' | 'grandchild',
): Promise<StacksTarget> {
  const binary = await stacksBinary(build);
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'iokit-snap-stacks-'));
  const fifo = path.join(dir, 'fifo');
  await run('mkfifo', [fifo]);
  // Not under scripts/asan.sh's preloaded libasan: its interceptors (read, nanosleep) would
  // stand between the target's functions and libc, and the stacks under test would be theirs.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'LD_PRELOAD'));
  const child =
    placement === 'child'
      ? spawn(binary, [fifo], { stdio: ['ignore', 'pipe', 'inherit'], env })
      : spawn('sh', ['-c', '"$0" "$1" & wait', binary, fifo], { stdio: ['ignore', 'pipe', 'inherit'], env });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  let pid = 0;
  const stop = async () => {
    for (const p of [pid, child.pid!]) {
      try {
        if (p > 0) process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
    await fs.promises.rm(dir, { recursive: true, force: true });
  };
  t.teardown(stop);
  const ready = await waitFor(() => /ready pid=(\d+) spinner=(\d+) sleeper=(\d+)/.exec(out), `the ${build} stacks target to be ready`);
  pid = Number(ready[1]);
  let echoes = 0;
  return {
    pid,
    spinner: Number(ready[2]),
    sleeper: Number(ready[3]),
    output: () => out,
    child,
    async echo(line: string) {
      const text = `${line} ${++echoes}`;
      await fs.promises.writeFile(fifo, text + '\n');
      await waitFor(() => out.includes(`got ${text}\n`), `the target to answer "${text}"`);
    },
    stop,
  };
}

/** TracerPid and the state letter of every thread of `pid`. */
export function tracedOrStopped(pid: number): string[] {
  const problems: string[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue;
    }
    const tracer = /TracerPid:\s*(\d+)/.exec(status)?.[1];
    const state = /State:\s*(\S)/.exec(status)?.[1];
    if (tracer !== '0') problems.push(`thread ${tid} traced by ${tracer}`);
    if (state === 't' || state === 'T') problems.push(`thread ${tid} stopped (${state})`);
  }
  return problems;
}
