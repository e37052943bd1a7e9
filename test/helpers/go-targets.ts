/**
 * The Go test program (test/targets/go/main.go) built with `go build` in three kinds: a
 * plain build (symbols and DWARF), a PIE (-buildmode=pie) and a stripped one
 * (-ldflags='-s -w'), cached under os.tmpdir() by a hash of the source, the Go version and
 * the flags. `goSkip` says why Go tests cannot run (no go command) or is false.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const SOURCE_DIR = path.join(__dirname, '..', 'targets', 'go');
const READY_TIMEOUT_MS = 20000;

function goVersion(): string | null {
  try {
    return execFileSync('go', ['version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 30000 }).trim();
  } catch {
    return null;
  }
}
const VERSION = goVersion();
export const goSkip: string | false = VERSION === null ? 'go is not installed (apt-get install golang-go): the goroutine tests build a real Go program' : false;

export type GoBuild = 'plain' | 'pie' | 'stripped';
const FLAGS: Record<GoBuild, string[]> = { plain: [], pie: ['-buildmode=pie'], stripped: ['-ldflags=-s -w'] };
const built = new Map<GoBuild, Promise<string>>();

/** The path of the built program, building it on first use. */
export function goBinary(kind: GoBuild): Promise<string> {
  let binary = built.get(kind);
  if (binary === undefined) {
    binary = build(kind);
    built.set(kind, binary);
  }
  return binary;
}

async function build(kind: GoBuild): Promise<string> {
  const hash = createHash('sha256').update(fs.readFileSync(path.join(SOURCE_DIR, 'main.go'))).update(String(VERSION)).update(process.arch).update(FLAGS[kind].join(' ')).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'iokit-snap-go', hash);
  const binary = path.join(dir, 'goroutines');
  if (fs.existsSync(binary)) return binary;
  await fs.promises.mkdir(dir, { recursive: true });
  const partial = `${binary}.${process.pid}.tmp`;
  // Without LD_PRELOAD (scripts/asan.sh preloads libasan into the tests), and with a build
  // cache of its own when HOME has none (CI).
  const env: NodeJS.ProcessEnv = { ...process.env, CGO_ENABLED: '0', GOCACHE: process.env.GOCACHE ?? path.join(os.tmpdir(), 'iokit-snap-go', 'cache') };
  delete env.LD_PRELOAD;
  await promisify(execFile)('go', ['build', ...FLAGS[kind], '-o', partial, '.'], { cwd: SOURCE_DIR, env, timeout: 300000 });
  await fs.promises.rename(partial, binary);
  return binary;
}

export interface GoTarget {
  pid: number;
  info: Record<string, string>;
  child: ChildProcess;
  /** Asks the program for its own goroutine dump (SIGUSR1) and returns it (the ground truth). */
  dump(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts the `kind` build in `mode` and resolves once it printed its ready line; stopped in `t`'s teardown. */
export async function startGo(t: { teardown(fn: () => unknown): void }, kind: GoBuild, mode: string, args: string[] = []): Promise<GoTarget> {
  const binary = await goBinary(kind);
  const dumpFile = path.join(os.tmpdir(), `iokit-snap-go-dump-${process.pid}-${Math.random().toString(36).slice(2)}.txt`);
  const env: NodeJS.ProcessEnv = { ...process.env, GOROUTINE_DUMP: dumpFile, GOMAXPROCS: '2' };
  delete env.LD_PRELOAD;
  const child = spawn(binary, [mode, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const stop = async (): Promise<void> => {
    fs.rmSync(dumpFile, { force: true });
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await gone;
  };
  t.teardown(stop);
  const info = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Go target did not get ready within ${READY_TIMEOUT_MS} ms; stderr: ${stderr}`)), READY_TIMEOUT_MS);
    const check = (): void => {
      const line = stdout.split('\n').find((l) => l.startsWith('ready'));
      if (line === undefined) return;
      clearTimeout(timer);
      resolve(Object.fromEntries(line.trim().split(/\s+/).slice(1).map((pair) => pair.split('=') as [string, string])));
    };
    child.stdout!.on('data', check);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the Go target exited (${signal ?? code}) before it was ready; stderr: ${stderr}`));
    });
  });
  let dumps = 0;
  return {
    pid: child.pid!,
    info,
    child,
    stop,
    async dump() {
      dumps++;
      const want = dumps;
      child.kill('SIGUSR1');
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while ((stdout.match(/^dumped$/gm)?.length ?? 0) < want) {
        if (Date.now() > deadline) throw new Error('the Go target did not write its goroutine dump');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return fs.readFileSync(dumpFile, 'utf8');
    },
  };
}

export interface DumpedGoroutine {
  goid: number;
  /** What the brackets say: "semacquire", "chan receive", "running", "syscall", … (", N minutes" left out). */
  state: string;
  /** Function names, innermost first, as printed ("sync.(*Mutex).Lock" for an inlined "sync.(*Mutex).Lock(...)"). */
  frames: string[];
  createdBy: string | null;
}

/** Parses a runtime.Stack / pprof debug=2 dump. */
export function parseDump(text: string): DumpedGoroutine[] {
  const out: DumpedGoroutine[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const lines = block.split('\n').filter((l) => l !== '');
    const head = /^goroutine (\d+) \[([^\]]*)\]:$/.exec(lines[0] ?? '');
    if (head === null) continue;
    const g: DumpedGoroutine = { goid: Number(head[1]), state: head[2].split(',')[0].trim(), frames: [], createdBy: null };
    for (const line of lines.slice(1)) {
      if (line.startsWith('\t')) continue;
      const created = /^created by (\S+)/.exec(line);
      if (created !== null) {
        g.createdBy = created[1];
        break;
      }
      g.frames.push(line.replace(/\([^()]*\)$/, ''));
    }
    out.push(g);
  }
  return out;
}
