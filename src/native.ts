/**
 * The one way to load the binding, its raw types (kept apart from the public API),
 * and the one place that turns native failures into IokitSnapError.
 */
import * as path from 'node:path';
import { IokitSnapError, toIokitSnapError } from './errors';
import type { Host, Limitation, ProcessAbi, PropertyValue, ThreadOptions, ThreadSample } from './types';

/** An accelerator as the native layer reports it; src/map/ turns it into an Accelerator. */
export interface RawAccelerator {
  id: string;
  name: string;
  className: string;
  classChain: string[];
  location: string;
  busyCount: number | null;
  busyTimeNs: number | null;
  serviceState: { registered: boolean; matched: boolean; active: boolean } | null;
  retainCount: number | null;
  properties: Record<string, PropertyValue>;
}

export interface RawAcceleratorSample {
  accelerators: RawAccelerator[];
  limits: Limitation[];
}

export interface RawProcessSample {
  pid: number;
  name: string;
  sampledAtNs: number;
  abi?: ProcessAbi;
  ppid?: number;
  threads: ThreadSample[];
  limits: Limitation[];
}

/** The thread options the native layer reads (the deadline is enforced in JS). */
/**
 * What the native sampler takes: the options less the deadline, plus the share of it user stacks may
 * use (Linux) and the deadline for asking for a task port (macOS: task_for_pid may wait on taskgated).
 */
export type RawThreadOptions = Omit<ThreadOptions, 'timeoutMs'> & { stackBudgetMs?: number; callTimeoutMs?: number };

export interface RawThreadSampler {
  sample(): Promise<RawProcessSample>;
  close(): void;
  /** Gives back the fds it keeps between samples; it samples on, opening them again. */
  release(): void;
}

export interface NativeInternals {
  callName(os: 'linux' | 'darwin', arch: 'x64' | 'arm64', num: number): string | null;
  callNameOrNumber(os: 'linux' | 'darwin', arch: 'x64' | 'arm64', num: number): string;
  linuxCallName(abi: Exclude<ProcessAbi, 'kernel'>, num: number): string | null;
  linuxCallNameOrNumber(abi: Exclude<ProcessAbi, 'kernel'>, num: number): string;
  firstArgIsFd(os: 'linux' | 'darwin', call: string): boolean;
  darwinCallNumberFromRegister(arch: 'x64' | 'arm64', reg: bigint | number): number | null;
  stripPointerAuth(pointer: bigint | number): bigint;
  threadStateFromMach(runState: number, flags: number): string;
  timeValueToNs(seconds: number, microseconds: number): number;
  /**
   * Linux only: the ELF reader behind user stacks (native/linux/elf_file.h), over one
   * file `root + path` opened per call. `machine` defaults to the host's. A file that
   * cannot be opened throws with `code` (ENOENT, EACCES, EINVAL: not an ELF file of
   * that machine).
   */
  elfSymbolAt?(root: string, path: string, addresses: Array<bigint | number>, machine?: ElfMachine): Array<ElfSymbol | null>;
  elfUnwindRuleAt?(root: string, path: string, addresses: Array<bigint | number>, machine?: ElfMachine): Array<ElfUnwindRule | null>;
  elfAddressOfFileOffset?(root: string, path: string, offsets: Array<bigint | number>, machine?: ElfMachine): Array<bigint | null>;
  elfInfo?(root: string, path: string, machine?: ElfMachine): ElfInfo;
  /** Linux only: the zlib inflater behind compressed ELF sections; null when it refuses the stream. */
  inflateZlib?(bytes: Uint8Array, expectedSize: number): Buffer | null;
  [name: string]: unknown;
}

export type ElfMachine = 'x64' | 'arm64';
export interface ElfSymbol {
  name: string;
  offset: number;
}
/** How to find the caller at an address (see UnwindRule in native/linux/elf_file.h). */
export interface ElfUnwindRule {
  cfaBase: 'sp' | 'fp';
  cfaOffset: number;
  ra: 'cfa' | 'lr' | 'undefined';
  raOffset: number;
  fp: 'same' | 'cfa';
  fpOffset: number;
}
export interface ElfInfo {
  hasSymbols: boolean;
  hasUnwindInfo: boolean;
  /** The separate debug file used, as the target sees it ('' when none). */
  debugFile: string;
}

/** What readMemory settles with (native/linux/memory.h): every range's bytes end to end, and per range 1 when read whole. */
export interface RawMemoryRead {
  bytes: Buffer;
  read: Buffer;
}

/** One process of a host scan's cheap pass (native/linux/host_scan.h). */
export interface RawHostProcess {
  pid: number;
  status: 'ok' | 'gone' | 'failed';
  code?: string;
  reason?: string;
  /** First pass to read it (or its pid was reused): `identity` is set. */
  fresh: boolean;
  identity?: { name: string; state: string; ppid: number; uid: number | null; kernel: boolean; startTicks: number };
  threads: number;
  still: number;
  rewaited: number;
  moved: number;
  settled: number;
  settledRewaited: number;
  /** Threads that could be stuck: still or re-waiting, and not settled. */
  candidates: number[];
  newThreads: number[];
  tids: number[];
}

export interface RawHostPass {
  startedNs: number;
  endedNs: number;
  processCount: number;
  /** Threads covered: read, or of a process none of whose threads ran (its CPU clock did not move). */
  threadCount: number;
  /** Threads whose schedstat was read. */
  threadReads: number;
  /** Processes none of whose threads ran since the previous pass: nothing of them was read. */
  unchangedProcesses: number;
  keyReads: number;
  oneShotReads: number;
  keptFds: number;
  processes: RawHostProcess[];
  limits: Limitation[];
}

export interface RawHostScanner {
  scan(pids: Int32Array, detail: Int32Array): Promise<RawHostPass>;
  /** (pid, tid, call number or -1, first argument or -1) quadruples: threads judged idle in that wait. */
  settle(requests: Float64Array): void;
  reading(): { pid: number; file: string } | null;
  close(): void;
}

export interface RawLabels {
  pid: number;
  found: boolean;
  cgroup: string;
  devices: string[];
  devicesTruncated: boolean;
}

export interface NativeBinding {
  /** Linux only: the cheap pass of a host scan, and the labels of the processes it finds. */
  openHostScanner?(options: { procRoot?: string }): RawHostScanner;
  readLabels?(pids: Int32Array, options: { procRoot?: string; maxFds?: number }): Promise<RawLabels[]>;
  platform: 'darwin' | 'linux' | 'unsupported';
  /** Linux: process_vm_readv of `ranges`, (address, length) pairs (src/runtimes/memory.ts checks them); elsewhere it throws ENOTSUP. */
  readMemory(pid: number, ranges: BigUint64Array): Promise<RawMemoryRead>;
  sampleAccelerators(options: { sysRoot?: string; nvml?: boolean; nvmlLibrary?: string; callTimeoutMs?: number; callBudgetMs?: number }): Promise<RawAcceleratorSample>;
  sampleThreads(pid: number, options: RawThreadOptions): Promise<RawProcessSample>;
  openThreadSampler(pid: number, options: RawThreadOptions): Promise<RawThreadSampler>;
  readHost(): Promise<Host>;
  monotonicNs(): number;
  internals: NativeInternals;
}

let loaded: NativeBinding | undefined;
let loadError: IokitSnapError | undefined;

/** The binding, or an IokitSnapError (ENOTSUP) that says which paths were tried and how to build. */
export function binding(): NativeBinding {
  if (loaded) return loaded;
  if (loadError) throw loadError;
  const root = path.join(__dirname, '..');
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const load = require('node-gyp-build') as (dir: string) => NativeBinding;
    loaded = load(root);
    return loaded;
  } catch (error) {
    const tried = [
      path.join(root, 'build', 'Release', 'iokit_snap.node'),
      path.join(root, 'build', 'Debug', 'iokit_snap.node'),
      path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, '*.node'),
    ];
    loadError = new IokitSnapError(
      'ENOTSUP',
      `iokit-snap: no native binary loads on ${process.platform}-${process.arch} (Node ${process.version}).\n` +
        `Tried:\n${tried.map((p) => `  ${p}`).join('\n')}\n` +
        `Build it from source with \`npm rebuild iokit-snap\` (needs python3, make and a C++17 compiler), ` +
        `or run \`npx node-gyp rebuild\` in ${root}.\n` +
        `Loader said: ${(error as Error).message}`,
      { cause: error },
    );
    throw loadError;
  }
}

/** Whether this platform has a backend at all (loading never throws from here). */
export function hasBackend(): boolean {
  try {
    return binding().platform !== 'unsupported';
  } catch {
    return false;
  }
}

/**
 * Run one native probe with a deadline. A probe that does not settle in time is
 * abandoned (its thread finishes or not on its own; it holds nothing of ours
 * that matters) and the call rejects with ETIMEDOUT naming what hung.
 */
export async function withDeadline<T>(start: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let probe: Promise<T> & { abandon?: () => void };
  try {
    probe = start(); // argument checks in the glue throw synchronously
  } catch (error) {
    throw toIokitSnapError(error);
  }
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Native probes carry abandon(): the stuck thread stops holding the event loop open.
      probe.abandon?.();
      reject(
        new IokitSnapError(
          'ETIMEDOUT',
          `${what} did not return within ${timeoutMs} ms: the system (a driver, the kernel or the target) may be hung. ` +
            `The probe was abandoned; retry with a larger timeout, or treat this as evidence of the hang.`,
        ),
      );
    }, timeoutMs);
  });
  return Promise.race([probe, deadline]).then(
    (value) => {
      clearTimeout(timer);
      return value;
    },
    (error: unknown) => {
      clearTimeout(timer);
      throw toIokitSnapError(error);
    },
  );
}
