/** Types for real-programs.js (plain CommonJS, shared with bench/verdicts.js). */
import type { ChildProcess } from 'node:child_process';

export class Proc {
  child: ChildProcess;
  pid: number;
  stdout: string;
  stderr: string;
  exited: boolean;
  status: { code: number | null; signal: NodeJS.Signals | null; error?: Error } | null;
  exit: Promise<NonNullable<Proc['status']>>;
  line(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  ready(timeoutMs?: number): Promise<Record<string, string> & { pid: number }>;
}

export interface SpawnOptions {
  uid?: number;
  gid?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  stdin?: 'pipe';
  stop?: NodeJS.Signals;
  graceMs?: number;
}

export class Scope {
  constructor(label: string);
  label: string;
  closed: boolean;
  defer(async: () => Promise<unknown>, sync?: () => unknown): void;
  tmpdir(prefix: string, options?: { mode?: number; owner?: { uid: number; gid: number } }): string;
  spawn(command: string, args: string[], options?: SpawnOptions): Proc;
  close(): Promise<void>;
  closeSync(): void;
}

export interface ThreadState {
  tid: number;
  state: string;
  wchan: string;
  syscall: number | null;
}

/** A program in its state: what to watch, and (for a state that comes later) how to bring it. */
export interface Started {
  pid: number;
  pids: number[];
  info?: Record<string, string> & { pid: number };
  proc?: Proc;
  port?: number;
}

export interface Redis extends Started {
  socket: string;
  cli(...args: Array<string | number>): Promise<string>;
}

export interface Postgres extends Started {
  dir: string;
  psql(sql: string): Promise<string>;
  psqlArgs(...args: string[]): string[];
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  pid: number;
}

export type Runtime = 'c' | 'fuse' | 'redis' | 'postgres' | 'nginx' | 'wrk' | 'java' | 'go' | 'python' | 'node' | 'coreutils';

export const isRoot: boolean;
export const CLI: string;

export function closeAllScopes(): Promise<void>;
export function closeAllScopesSync(): void;
export function installCleanupHandlers(log?: (line: string) => void): void;
export function waitFor<T>(probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, what: string, timeoutMs?: number, intervalMs?: number): Promise<T>;
export function sleep(ms: number): Promise<void>;
export function threadsOf(pid: number): ThreadState[];
export function childrenOf(pid: number): number[];
export function alive(pid: number): boolean;
export function inCall(thread: ThreadState, ...names: string[]): boolean;
/** Why `name` cannot be used (null: it can); with install (as root), apt installs it first. */
export function missing(name: Runtime, options?: { install?: boolean; log?: (line: string) => void }): string | null;

export function targetBinary(): Promise<string>;
export function poolBinary(): Promise<string>;
export function fuseBinary(): Promise<string>;
export function goBinary(): Promise<string>;
export function javaClasses(): Promise<string>;
export function javaCommand(...args: Array<string | number>): Promise<string[]>;
export function goCommand(...args: Array<string | number>): Promise<string[]>;
export function pythonCommand(...args: Array<string | number>): string[];
export function nodeCommand(...args: Array<string | number>): string[];
export function python3(): string | null;
export function httpGet(port: number, urlPath?: string, timeoutMs?: number): Promise<{ status: number | undefined; body: string }>;
export function httpFire(scope: Scope, port: number, urlPath: string): unknown;
export function gzipInput(scope: Scope, seconds?: number): Promise<{ file: string; bytes: number; expectedSeconds: number }>;

export function startReady(scope: Scope, argv: string[], options?: { stop?: NodeJS.Signals; graceMs?: number; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<Started & { info: Record<string, string> & { pid: number }; proc: Proc }>;
export function startTarget(scope: Scope, mode: string, ...args: string[]): Promise<Started & { info: Record<string, string> & { pid: number } }>;
export function startCPool(scope: Scope): Promise<Started>;
export function startSleep(scope: Scope): Promise<Started>;
export function startTailFollow(scope: Scope): Promise<Started>;
export function startRedis(scope: Scope): Promise<Redis>;
export function freezeRedis(scope: Scope, redis: Redis, seconds?: number): Promise<void>;
export function startRedisConsumer(scope: Scope): Promise<Started & { redis: Redis }>;
export function startRedisBusy(scope: Scope): Promise<Redis & { load: Proc }>;
export function startPostgres(scope: Scope): Promise<Postgres>;
export function startPostgresLockHolder(scope: Scope): Promise<Postgres & { holder: Proc; contender: string[]; contenderEnv: NodeJS.ProcessEnv }>;
export function startPostgresLockWait(scope: Scope): Promise<{ pg: Postgres; backend: number; client: number; clientProc: Proc }>;
export function startPostgresBusy(scope: Scope): Promise<Postgres & { load: Proc }>;
export function backendOf(pg: Postgres, name: string, waiting?: string): Promise<number>;
export function startNginx(scope: Scope): Promise<Started & { port: number; requests(): Promise<number> }>;
export function startNginxBusy(scope: Scope): Promise<Started & { port: number; load: Proc; loadTool: string }>;
export function startJavaIdle(scope: Scope): Promise<Started & { port: number }>;
export function startJavaDeadlock(scope: Scope): Promise<Started>;
export function startJavaBatch(scope: Scope, seconds?: number): Promise<Started>;
export function startGoIdle(scope: Scope): Promise<Started & { port: number }>;
export function startGoBusy(scope: Scope): Promise<Started>;
export function startGoDeadlock(scope: Scope): Promise<Started>;
export function startPythonHttpServer(scope: Scope): Promise<Started & { port: number }>;
export function startPython(scope: Scope, mode: string, ...args: Array<string | number>): Promise<Started & { info: Record<string, string> & { pid: number } }>;
export function startPythonPool(scope: Scope): Promise<Started>;
export function startPythonConsumer(scope: Scope): Promise<Started>;
export function startPythonFrozenServer(scope: Scope): Promise<Started & { port: number }>;
export function freezeHttpServer(scope: Scope, server: Started & { port: number }, call?: string[]): Promise<void>;
export function startNodeServer(scope: Scope, mode?: 'idle' | 'frozen'): Promise<Started & { port: number }>;
export function startFuse(scope: Scope, mode?: 'idle' | 'silent'): Promise<Started & { mountpoint: string; file: string }>;
export function startFuseStuckReader(scope: Scope): Promise<Started & { fuse: Started & { mountpoint: string; file: string }; proc: Proc }>;
export function fifoNobodyWrites(scope: Scope): string;
export function startPipeDeadlock(scope: Scope): Promise<Started & { child: number }>;
export function stopProcess(pid: number): Promise<void>;
export function iokitSnap(scope: Scope, args: string[], options?: { timeoutMs?: number; onStdout?: (text: string) => void; env?: NodeJS.ProcessEnv }): Promise<CliResult>;
export function programEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
export function jsonLines(text: string): Array<Record<string, any>>;

export interface Finding {
  kind: string;
  severity: 'info' | 'warning' | 'critical';
  subject: string;
  ref?: { pid?: number; tid?: number };
  message: string;
  durationMs?: number;
}
export type Verdict = 'healthy' | 'suspect' | 'hung';
export interface Report {
  verdict: Verdict;
  findings: Finding[];
}
export interface WatchSummary {
  samples: Array<{ verdict: Verdict; findings: Finding[] }>;
  hangs: Array<{ report: Report }>;
  exits: Array<{ pid: number }>;
  errors: Array<{ error: { code: string; message: string } }>;
  discarded: number;
  worst: Verdict;
  last: Verdict | null;
  loud: Finding[];
}
export function watchRun(
  scope: Scope,
  pids: number[],
  options?: { interval?: string; stall?: string; forMs?: number; trigger?: () => Promise<unknown>; triggerAfterSamples?: number; extra?: string[] },
): Promise<{ result: CliResult; events: Array<Record<string, any>>; triggerError: Error | null }>;
export function diffRun(
  scope: Scope,
  pids: number[],
  options?: { readyAt?: number; firstAtMs?: number; secondAtMs?: number; stall?: string; trigger?: () => Promise<unknown>; stacks?: 'second' | 'both' | 'none' },
): Promise<{ result: CliResult; report: Report | null; files: [string, string]; at: [number, number] }>;
export function execRun(
  scope: Scope,
  argv: string[],
  options?: { timeout?: string; stall?: string; kill?: boolean; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<{ result: CliResult; lines: Array<{ outcome: 'waiting' | 'killed' | 'left-running'; report: Report; pid: number }>; ms: number }>;
export function worstVerdict(verdicts: Verdict[]): Verdict;
export function summarizeWatch(events: Array<Record<string, any>>): WatchSummary;
