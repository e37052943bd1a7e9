/**
 * A FUSE mount whose daemon never answers a read, write or create
 * (test/targets/fuse-hang.c), and plain processes to put in waits on it.
 *
 *   const skip = fuseMissing();                 // a reason to skip, or false
 *   const fuse = await mountHang(t);            // unmounted in t's teardown
 *   const reader = spawnProcess(t, binary, ['read', `${fuse.dir}/a`]);
 *   await fuse.request('read', '/a');           // the daemon holds the request now
 *
 * Killing the daemon aborts the connection, which ends every request it held: that is
 * how a test releases the processes that kill -9 cannot end.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor } from './targets';

const SOURCE = path.join(__dirname, '..', 'targets', 'fuse-hang.c');

function pkgConfig(): string[] | null {
  try {
    return execFileSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/);
  } catch {
    return null;
  }
}

/** Why the FUSE tests cannot run here, or false when they can. */
export function fuseMissing(): string | false {
  if (process.platform !== 'linux') return 'FUSE tests need Linux';
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse';
  if (process.getuid?.() !== 0) return 'mounting the test file system needs root';
  if (pkgConfig() === null) return 'no libfuse3 headers (pkg-config fuse3; apt install libfuse3-dev)';
  return false;
}

let built: Promise<string> | undefined;

/** fuse-hang, compiled once per test process into a cache directory keyed by its source. */
export function fuseHangBinary(): Promise<string> {
  built ??= (async () => {
    const flags = pkgConfig() as string[];
    const text = await fs.promises.readFile(SOURCE);
    const hash = createHash('sha256').update(text).update(process.arch).update(flags.join(' ')).digest('hex').slice(0, 16);
    const dir = path.join(os.tmpdir(), 'iokit-snap-targets', hash);
    const binary = path.join(dir, 'fuse-hang');
    if (fs.existsSync(binary)) return binary;
    await fs.promises.mkdir(dir, { recursive: true });
    const partial = `${binary}.${process.pid}.tmp`;
    // The libraries after the source: a linker that drops unneeded libraries reads left to right.
    execFileSync(process.env.CC ?? 'cc', ['-O1', '-o', partial, SOURCE, ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
    await fs.promises.rename(partial, binary);
    return binary;
  })();
  return built;
}

export interface HangMount {
  /** The mount point. */
  dir: string;
  daemon: ChildProcess;
  /** Resolves once the daemon holds a `kind` request for `file` ("/a"), with the caller's pid. */
  request(kind: 'read' | 'write' | 'create', file: string): Promise<number>;
  /** Kill the daemon: the connection aborts and every request it held ends with an error. */
  killDaemon(): Promise<void>;
}

/** Mount fuse-hang on a fresh directory; the daemon is killed and the mount removed in t's teardown. */
export async function mountHang(t: { teardown(fn: () => unknown): void }): Promise<HangMount> {
  const binary = await fuseHangBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-fuse-'));
  const daemon = spawn(binary, [dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  daemon.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const gone = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  const killDaemon = async (): Promise<void> => {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    await gone;
  };
  t.teardown(async () => {
    await killDaemon();
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      /* never mounted */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  let stderr = '';
  daemon.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const ready = await waitFor(() => out.includes('ready pid=') || daemon.exitCode !== null || daemon.signalCode !== null, `the FUSE daemon on ${dir} to be ready`);
  if (ready && !out.includes('ready pid=')) throw new Error(`the FUSE daemon exited before mounting ${dir}: ${stderr}`);
  return {
    dir,
    daemon,
    async request(kind, file) {
      const pattern = new RegExp(`^${kind} path=${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} pid=(\\d+)$`, 'm');
      const match = await waitFor(() => pattern.exec(out), `the daemon to receive a ${kind} of ${file}`);
      return Number(match[1]);
    },
    killDaemon,
  };
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  /** Whether it has exited within `ms`. */
  exitsWithin(ms: number): Promise<boolean>;
}

/** Start a process that the test puts in a wait; SIGKILLed (not awaited) in t's teardown. */
export function spawnProcess(t: { teardown(fn: () => unknown): void }, command: string, args: string[]): Spawned {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.resume();
  child.stderr!.resume();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    pid: child.pid!,
    exited,
    exitsWithin(ms) {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), ms);
        }),
      ]).finally(() => clearTimeout(timer));
    },
  };
}
