/**
 * watchHost(): every process on the machine, judged as watch() judges the ones it is given,
 * at a cost that follows what can change a verdict (src/analyze/README.md, "Whole-host mode").
 *
 * A cheap pass (native/linux/host_scan.h) reads every thread of every selected process every
 * `passMs`: one schedstat read a thread through a kept fd, the syscall file only for a thread
 * that ran next to nothing. It names the threads that could be stuck (still since the previous
 * pass, or waking and waiting again in the same wait) less those settled idle. A process with
 * such a thread is watched in full by a watch() of its own (the same ProgressTracker, rules,
 * stacks and events as `watch --pid`) until it has been judged healthy for a stall window;
 * then its idle threads are settled (their wait handed to the pass) and its watch stops. A
 * settled thread that does anything else, or waits anywhere else, is a candidate again.
 */
import { EventEmitter } from 'node:events';
import { IokitSnapError, toIokitSnapError } from '../errors';
import { binding, withDeadline, type RawHostProcess, type RawHostScanner, type RawLabels } from '../native';
import { checkBoolean, checkDuration, MAX_TIMER_MS, readOptions } from '../options';
import { monotonicNs } from '../sample';
import { describeValue } from '../snapshot-schema';
import type { Limitation, ProcessSample, Snapshot } from '../types';
import { isDriverCall } from '../analyze/calls';
import { isStopped } from '../analyze/thread-rules';
import type { ErrorEvent, Verdict, WatchEvent } from '../analyze/types';
import { waitKindOf } from '../analyze/wait-kind';
import { Watcher } from '../analyze/watch';
import { cgroupNames, cgroupPath, type ProcessLabels } from './labels';

export type { ProcessLabels } from './labels';

/** Which processes: every field given must match (name: a regular expression on the kernel's name). */
export interface HostSelector {
  name?: string | RegExp;
  /**
   * A cgroup path as /proc/PID/cgroup shows it ("/system.slice/nginx.service"): the process's
   * path is it or under it. A bare unit or container id ("nginx.service") matches those.
   */
  cgroup?: string;
  uid?: number;
}

export interface HostWatchOptions {
  /** Time between full samples of a watched process (default 500 ms). */
  intervalMs?: number;
  /** No progress for this long is a hang (default 5000 ms). */
  stallMs?: number;
  /** Time between cheap passes (default max(intervalMs, stallMs / 4); at most stallMs / 2). */
  passMs?: number;
  /** Only processes matching one of these (default: every process). */
  include?: HostSelector[];
  /** Never these (iokit-snap's own process is never watched). */
  exclude?: HostSelector[];
  /** CPU over wall time at or above which a thread counts as spinning (default 0.9). */
  spinRatio?: number;
  /** Take the stack of a thread whose wait only a stack can tell (default true); see watch(). */
  stacks?: boolean;
  /** 'full' (default); 'basic' reads only state and CPU time. */
  detail?: 'basic' | 'full';
  /** At most this many processes watched in full at once (default 64); the others wait for a later pass. */
  maxWatched?: number;
  /** Deadline of a pass and of each sample, ms (default max(2000, 4 × max(intervalMs, passMs))). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Read this tree instead of /proc (tests). */
  procRoot?: string;
}

/** A watch() event of one process of the host, with who it is. */
export type HostProcessEvent = Exclude<WatchEvent, ErrorEvent> & { pid: number; labels: ProcessLabels };

/** An error: of one process (pid and labels), or of the scan itself. */
export type HostErrorEvent = ErrorEvent & { pid?: number; labels?: ProcessLabels };

/** After each cheap pass: what it read, what it cost, and the verdicts of the processes it covers. */
export interface HostPassEvent {
  type: 'pass';
  at: string;
  monotonicNs: number;
  /** Processes and threads this pass covered. */
  processes: number;
  threads: number;
  /** Of those, processes none of whose threads ran since the previous pass (their CPU clock did not move): nothing else read. */
  unchanged: number;
  /** schedstat files read: the threads of the processes that ran. */
  threadReads: number;
  /** syscall files read (threads that ran next to nothing); labels read for new processes. */
  keyReads: number;
  labelReads: number;
  /** Wall time of the pass's native part, ms. */
  durationMs: number;
  /** Processes watched in full now (each had a thread that could be stuck). */
  watched: number;
  /** Processes by verdict: the ones not watched in full are healthy (nothing in them could be stuck). */
  verdicts: Record<Verdict, number>;
  limits: Limitation[];
}

export type HostEvent = HostPassEvent | HostProcessEvent | HostErrorEvent;

const DEFAULT_INTERVAL_MS = 500;
const DEFAULT_STALL_MS = 5000;
const DEFAULT_MAX_WATCHED = 64;
const QUEUE_LIMIT = 256;
/** Labels read per process: fds looked at for device nodes. */
const MAX_LABEL_FDS = 4096;
/** Every this many passes the names of the processes not selected are read again (one small read each). */
const RECHECK_PASSES = 8;

const KEYS = [
  'intervalMs',
  'stallMs',
  'passMs',
  'include',
  'exclude',
  'spinRatio',
  'stacks',
  'detail',
  'maxWatched',
  'timeoutMs',
  'signal',
  'procRoot',
] as const;

interface CheckedSelector {
  name?: RegExp;
  cgroup?: string;
  uid?: number;
}

function checkSelectors(name: 'include' | 'exclude', given: unknown): CheckedSelector[] {
  if (given === undefined) return [];
  if (!Array.isArray(given)) throw new IokitSnapError('EINVAL', `watchHost(): ${name} must be an array of selectors ({ name, cgroup, uid }), got ${describeValue(given)}`);
  return given.map((s: unknown, i): CheckedSelector => {
    const where = `watchHost(): ${name}[${i}]`;
    if (typeof s !== 'object' || s === null) throw new IokitSnapError('EINVAL', `${where} must be { name?, cgroup?, uid? }, got ${describeValue(s)}`);
    const o = readOptions<HostSelector>(where, s, ['name', 'cgroup', 'uid']);
    const out: CheckedSelector = {};
    if (o.name !== undefined) {
      if (o.name instanceof RegExp) out.name = o.name;
      else if (typeof o.name === 'string') {
        try {
          out.name = new RegExp(o.name);
        } catch (error) {
          throw new IokitSnapError('EINVAL', `${where}.name ${JSON.stringify(o.name)} is not a regular expression: ${(error as Error).message}`);
        }
      } else throw new IokitSnapError('EINVAL', `${where}.name must be a regular expression or its text, got ${describeValue(o.name)}`);
    }
    if (o.cgroup !== undefined) {
      if (typeof o.cgroup !== 'string' || o.cgroup === '') throw new IokitSnapError('EINVAL', `${where}.cgroup must be a cgroup path or a unit, got ${describeValue(o.cgroup)}`);
      out.cgroup = o.cgroup.length > 1 ? o.cgroup.replace(/\/+$/, '') : o.cgroup;
    }
    if (o.uid !== undefined) {
      if (!Number.isInteger(o.uid) || (o.uid as number) < 0) throw new IokitSnapError('EINVAL', `${where}.uid must be a uid (an integer ≥ 0), got ${describeValue(o.uid)}`);
      out.uid = o.uid;
    }
    if (out.name === undefined && out.cgroup === undefined && out.uid === undefined) {
      throw new IokitSnapError('EINVAL', `${where} selects nothing: give name, cgroup or uid`);
    }
    return out;
  });
}

function matches(s: CheckedSelector, l: ProcessLabels): boolean {
  if (s.name !== undefined && !s.name.test(l.name)) return false;
  if (s.uid !== undefined && l.uid !== s.uid) return false;
  if (s.cgroup !== undefined) {
    const c = s.cgroup;
    const path = l.cgroup;
    const inPath = path !== null && (c === '/' || path === c || path.startsWith(`${c}/`));
    const named = c === l.unit || (l.container !== null && (l.container === c || l.container.endsWith(`:${c}`)));
    if (!inPath && !named) return false;
  }
  return true;
}

/** The selected processes, as a host scan sees them. */
export function selected(labels: ProcessLabels, include: readonly CheckedSelector[], exclude: readonly CheckedSelector[]): boolean {
  if (include.length > 0 && !include.some((s) => matches(s, labels))) return false;
  return !exclude.some((s) => matches(s, labels));
}

/** The idle waits of a healthy process's sample, to settle: (pid, tid, call number, first argument) quadruples. */
export function settleRequests(sample: ProcessSample): number[] {
  const out: number[] = [];
  for (const t of sample.threads) {
    // Not settled: what a judgement must see again (D, a driver call, a stop, a lock, a join), and threads on a CPU.
    if (t.state === 'running' || t.state === 'runnable' || t.state === 'uninterruptible' || isStopped(t) || isDriverCall(t)) continue;
    const kind = waitKindOf(t, null);
    if (kind === 'lock' || kind === 'join') continue;
    const b = t.blockedIn;
    const arg0 = b === null ? -1 : b.futex !== undefined ? b.futex.address : b.fd !== undefined ? b.fd : -1;
    out.push(sample.pid, t.tid, b === null || b.number < 0 ? -1 : b.number, arg0);
  }
  return out;
}

interface Consumer {
  queue: HostEvent[];
  wake: (() => void) | null;
}

interface Watched {
  watcher: Watcher;
  startedNs: number;
  verdict: Verdict;
  /** Healthy in every sample since this (monotonic ns); -1 while not. */
  healthySinceNs: number;
}

/**
 * A running host scan: an EventEmitter ('pass', 'sample', 'hang', 'recover', 'exit', 'error',
 * 'close') and an AsyncIterable of the same events. Leaving a for-await loop closes it.
 */
export class HostWatcher extends EventEmitter implements AsyncIterable<HostEvent> {
  readonly intervalMs: number;
  readonly stallMs: number;
  readonly passMs: number;
  readonly timeoutMs: number;
  readonly done: Promise<void>;
  private readonly include: CheckedSelector[];
  private readonly exclude: CheckedSelector[];
  private readonly options: HostWatchOptions;
  private readonly maxWatched: number;
  private readonly procRoot: string;
  private readonly native: { scanner: () => RawHostScanner; labels: NonNullable<ReturnType<typeof binding>['readLabels']> };
  /** Selected processes, by pid: their labels. */
  private readonly known = new Map<number, ProcessLabels>();
  /**
   * Processes found and not selected, by pid: the name they had (left out of later passes while
   * their pid is listed; their name is looked at again every RECHECK_PASSES passes, so a process
   * first seen between fork and exec, or renamed, is judged by its new name).
   */
  private readonly ignored = new Map<number, string>();
  private passes = 0;
  /** Pids a pass got stuck on: never read again. */
  private readonly wedged = new Set<number>();
  private readonly watched = new Map<number, Watched>();
  /** The latest sample of each process judged healthy and settled: the baseline of its next full watch. */
  private readonly baselines = new Map<number, ProcessSample>();
  private readonly consumers = new Set<Consumer>();
  private closed = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private wakeLoop: (() => void) | null = null;

  constructor(given: HostWatchOptions = {}) {
    super();
    const options = readOptions<HostWatchOptions>('watchHost()', given, KEYS);
    for (const name of ['intervalMs', 'stallMs', 'passMs', 'timeoutMs'] as const) checkDuration('watchHost()', name, options[name]);
    checkBoolean('watchHost()', 'stacks', options.stacks);
    if (options.detail !== undefined && options.detail !== 'basic' && options.detail !== 'full') {
      throw new IokitSnapError('EINVAL', `watchHost(): detail must be 'basic' or 'full', got ${describeValue(options.detail)}`);
    }
    if (options.maxWatched !== undefined && !(Number.isInteger(options.maxWatched) && options.maxWatched >= 1)) {
      throw new IokitSnapError('EINVAL', `watchHost(): maxWatched must be an integer ≥ 1, got ${describeValue(options.maxWatched)}`);
    }
    if (options.procRoot !== undefined && typeof options.procRoot !== 'string') {
      throw new IokitSnapError('EINVAL', `watchHost(): procRoot must be a directory path, got ${describeValue(options.procRoot)}`);
    }
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw new IokitSnapError('EINVAL', `watchHost(): signal must be an AbortSignal, got ${describeValue(options.signal)}`);
    }
    this.include = checkSelectors('include', options.include);
    this.exclude = checkSelectors('exclude', options.exclude);
    const native = binding();
    /* c8 ignore next 6 -- macOS: no /proc to make a cheap pass of */
    if (native.openHostScanner === undefined || native.readLabels === undefined) {
      throw new IokitSnapError(
        'ENOTSUP',
        `watchHost(): a whole-host scan reads /proc and is Linux-only; on ${process.platform} name the processes to watch (watch --pid, serve --match)`,
      );
    }
    this.native = { scanner: () => native.openHostScanner!({ procRoot: options.procRoot }), labels: native.readLabels.bind(native) };
    this.options = options;
    this.procRoot = options.procRoot ?? '/proc';
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.stallMs = options.stallMs ?? DEFAULT_STALL_MS;
    // A thread stuck since a pass is a candidate at the next: 2 passes must fit in a stall window.
    this.passMs = Math.min(options.passMs ?? Math.max(this.intervalMs, this.stallMs / 4), Math.max(this.stallMs / 2, 1));
    this.timeoutMs = Math.min(MAX_TIMER_MS, options.timeoutMs ?? Math.max(2000, 4 * Math.max(this.intervalMs, this.passMs)));
    this.maxWatched = options.maxWatched ?? DEFAULT_MAX_WATCHED;
    if (options.signal !== undefined) {
      if (options.signal.aborted) this.closed = true;
      else options.signal.addEventListener('abort', () => this.close(), { once: true });
    }
    this.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
  }

  /** Stop scanning and every watch it started; iterators finish after the events already queued. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.wakeLoop?.();
  }

  /** The labels of a selected process the scan knows. */
  labelsOf(pid: number): ProcessLabels | undefined {
    return this.known.get(pid);
  }

  /** Pids watched in full now. */
  get watchedPids(): number[] {
    return [...this.watched.keys()];
  }

  [Symbol.asyncIterator](): AsyncIterator<HostEvent> {
    const consumer: Consumer = { queue: [], wake: null };
    this.consumers.add(consumer);
    let finished = false;
    const finish = (): IteratorResult<HostEvent> => {
      finished = true;
      this.consumers.delete(consumer);
      return { value: undefined, done: true };
    };
    return {
      next: async (): Promise<IteratorResult<HostEvent>> => {
        for (;;) {
          if (finished) return { value: undefined, done: true };
          const event = consumer.queue.shift();
          if (event !== undefined) return { value: event, done: false };
          if (this.stopped) return finish();
          await new Promise<void>((resolve) => (consumer.wake = resolve));
          consumer.wake = null;
        }
      },
      return: async (): Promise<IteratorResult<HostEvent>> => {
        this.close();
        return finish();
      },
    };
  }

  private publish(event: HostEvent): void {
    for (const consumer of this.consumers) {
      if (consumer.queue.length >= QUEUE_LIMIT) {
        const oldest = consumer.queue.findIndex((e) => e.type === 'sample' || e.type === 'pass');
        consumer.queue.splice(oldest >= 0 ? oldest : 0, 1);
      }
      consumer.queue.push(event);
      consumer.wake?.();
    }
    if (event.type !== 'error' || this.listenerCount('error') > 0) this.emit(event.type, event);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wakeLoop = resolve;
      this.timer = setTimeout(resolve, ms);
    }).then(() => {
      this.timer = null;
      this.wakeLoop = null;
    });
  }

  private scanner: RawHostScanner | null = null;

  private async run(): Promise<void> {
    try {
      while (!this.closed) {
        const startedMs = Date.now();
        const scanner = (this.scanner ??= this.native.scanner());
        try {
          await this.pass(scanner);
        } catch (error) {
          const e = toIokitSnapError(error);
          const stuck = e.code === 'ETIMEDOUT' ? scanner.reading() : null;
          // A pass that missed its deadline is left to finish on its own: a new scanner, without the process it was stuck on.
          if (stuck !== null) {
            scanner.close();
            this.scanner = null;
          }
          const labels = stuck !== null ? this.known.get(stuck.pid) : undefined;
          if (stuck !== null) {
            this.wedged.add(stuck.pid);
            this.known.delete(stuck.pid);
          }
          const message =
            stuck !== null
              ? `${e.message} It was reading /proc/${stuck.pid}/${stuck.file}${labels !== undefined ? ` (${labels.name})` : ''}: that process is left out of the scan from now on.`
              : e.message;
          this.publish({
            type: 'error',
            at: new Date().toISOString(),
            monotonicNs: monotonicNs(),
            error: new IokitSnapError(e.code, message, { cause: e }),
            ...(stuck !== null ? { pid: stuck.pid } : {}),
            ...(labels !== undefined ? { labels } : {}),
          });
          // A procfs that cannot be read at all ends the scan: nothing else would work.
          if (e.code === 'ENOENT' || e.code === 'EIO') break;
        }
        if (this.closed) break;
        await this.sleep(Math.max(0, this.passMs - (Date.now() - startedMs)));
      }
    } finally {
      this.scanner?.close();
      this.scanner = null;
      for (const w of this.watched.values()) w.watcher.close();
      await Promise.all([...this.watched.values()].map((w) => w.watcher.done));
      this.watched.clear();
      this.closed = true;
      this.stopped = true;
      for (const consumer of this.consumers) consumer.wake?.();
      this.emit('close');
    }
  }

  /** The pids /proc lists now, less the ones left out. */
  private listPids(): number[] {
    const { readdirSync } = require('node:fs') as typeof import('node:fs');
    let names: string[];
    try {
      names = readdirSync(this.procRoot);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'ENOENT' : 'EIO';
      throw new IokitSnapError(code, `cannot list ${this.procRoot}: ${(error as Error).message}. Give the directory procfs is mounted on (procRoot).`, { cause: error });
    }
    const pids: number[] = [];
    const listed = new Set<number>();
    for (const name of names) {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid < 1) continue;
      listed.add(pid);
      if (pid === process.pid || this.ignored.has(pid) || this.wedged.has(pid)) continue;
      pids.push(pid);
    }
    // A pid no longer listed: its process is gone; a later one under that pid is looked at afresh.
    for (const pid of this.ignored.keys()) if (!listed.has(pid)) this.ignored.delete(pid);
    if (++this.passes % RECHECK_PASSES === 0) this.recheckNames();
    for (const pid of this.known.keys()) if (!listed.has(pid)) this.known.delete(pid);
    for (const pid of this.baselines.keys()) if (!listed.has(pid)) this.baselines.delete(pid);
    return pids;
  }

  /** A process not selected whose name changed (an exec after the fork we saw, a rename) is looked at afresh. */
  private recheckNames(): void {
    const { readFileSync } = require('node:fs') as typeof import('node:fs');
    for (const [pid, name] of this.ignored) {
      let now: string | null = null;
      try {
        now = readFileSync(`${this.procRoot}/${pid}/comm`, 'utf8').replace(/\n$/, '');
        /* c8 ignore next 3 -- a process that exited between the listing and this read: the next listing drops it */
      } catch {
        // Gone.
      }
      if (now !== null && now !== name) this.ignored.delete(pid);
    }
  }

  private async pass(scanner: RawHostScanner): Promise<void> {
    const pids = this.listPids();
    const record = await withDeadline(() => scanner.scan(Int32Array.from(pids), new Int32Array(0)), this.timeoutMs, 'a host scan pass');
    const limits = [...record.limits];
    // New processes: who they are (read once), and whether they are selected.
    const fresh = record.processes.filter((p) => p.status === 'ok' && p.fresh);
    let labelReads = 0;
    if (fresh.length > 0) {
      labelReads = fresh.length;
      let raw: RawLabels[] = [];
      try {
        raw = await withDeadline(
          () => this.native.labels(Int32Array.from(fresh.map((p) => p.pid)), { procRoot: this.options.procRoot, maxFds: MAX_LABEL_FDS }),
          this.timeoutMs,
          'reading the cgroup and open files of new processes',
        );
      } catch (error) {
        // Their cgroup (the kernel's cgroup mutex) or fds could not be read in time: judged without those labels.
        limits.push({ subject: 'host', field: 'labels', code: toIokitSnapError(error).code, reason: toIokitSnapError(error).message });
      }
      fresh.forEach((p, i) => this.admit(p, raw[i]));
    }
    for (const p of record.processes) {
      if (p.status !== 'ok' || p.fresh) this.baselines.delete(p.pid); // gone, or another process under its pid
      if (p.status !== 'ok') {
        this.known.delete(p.pid);
        continue;
      }
      if (p.candidates.length === 0 || this.watched.has(p.pid)) continue;
      const labels = this.known.get(p.pid);
      /* c8 ignore next -- a guard: every process a pass reads was admitted (selected) when it was fresh */
      if (labels === undefined) continue;
      if (this.watched.size >= this.maxWatched) {
        limits.push({
          subject: 'host',
          field: 'threads',
          code: 'EAGAIN',
          reason: `${this.maxWatched} processes are watched in full already (maxWatched): pid ${p.pid} (${labels.name}) waits for a later pass`,
        });
        continue;
      }
      this.startWatch(p.pid, labels);
    }
    const verdicts: Record<Verdict, number> = { healthy: 0, suspect: 0, hung: 0 };
    for (const w of this.watched.values()) if (w.verdict !== 'healthy') verdicts[w.verdict]++;
    verdicts.healthy = Math.max(0, this.known.size - verdicts.suspect - verdicts.hung);
    this.publish({
      type: 'pass',
      at: new Date().toISOString(),
      monotonicNs: record.endedNs,
      processes: record.processCount,
      threads: record.threadCount,
      unchanged: record.unchangedProcesses,
      threadReads: record.threadReads,
      keyReads: record.keyReads,
      labelReads,
      durationMs: (record.endedNs - record.startedNs) / 1e6,
      watched: this.watched.size,
      verdicts,
      limits,
    });
  }

  private admit(p: RawHostProcess, raw: RawLabels | undefined): void {
    const id = p.identity!;
    const cgroup = raw?.found === true ? cgroupPath(raw.cgroup) : null;
    const labels: ProcessLabels = { pid: p.pid, name: id.name, uid: id.uid, kernel: id.kernel, cgroup, ...cgroupNames(cgroup), devices: raw?.devices ?? [] };
    if (selected(labels, this.include, this.exclude)) {
      this.known.set(p.pid, labels);
      this.ignored.delete(p.pid);
    } else {
      this.known.delete(p.pid);
      this.ignored.set(p.pid, labels.name);
    }
  }

  private startWatch(pid: number, labels: ProcessLabels): void {
    const healthy = this.baselines.get(pid);
    const watcher = new Watcher({
      pid,
      ...(healthy !== undefined ? { baseline: { monotonicNs: healthy.sampledAtNs, processes: [healthy], accelerators: [], limits: [] } as unknown as Snapshot } : {}),
      intervalMs: this.intervalMs,
      stallMs: this.stallMs,
      spinRatio: this.options.spinRatio,
      accelerators: false,
      detail: this.options.detail,
      stacks: this.options.stacks,
      procRoot: this.options.procRoot,
      timeoutMs: this.timeoutMs,
    });
    const entry: Watched = { watcher, startedNs: monotonicNs(), verdict: 'healthy', healthySinceNs: -1 };
    this.watched.set(pid, entry);
    const forward = (event: WatchEvent): void => {
      /* c8 ignore next -- a sample already in flight when close() came: not published after the scan stopped */
      if (this.closed) return;
      // A process that exited between the pass and its first sample is no error of ours.
      if (event.type === 'error') {
        if (event.error.code !== 'ESRCH') this.publish({ ...event, pid, labels });
      }
      else this.publish({ ...event, pid, labels } as HostProcessEvent);
    };
    watcher.on('sample', (event: Extract<WatchEvent, { type: 'sample' }>) => {
      forward(event);
      if (event.discarded !== undefined) return;
      entry.verdict = event.verdict;
      if (event.verdict !== 'healthy') entry.healthySinceNs = -1;
      else if (entry.healthySinceNs < 0) entry.healthySinceNs = event.monotonicNs;
      // Judged healthy over a stall window, each stack it asked for taken: its idle threads are settled, its watch ends.
      const judgedNs = (this.stallMs + 2 * this.intervalMs) * 1e6;
      if (entry.healthySinceNs >= 0 && event.monotonicNs - entry.startedNs >= judgedNs) {
        const sample = watcher.latest(pid);
        if (sample !== undefined) {
          this.settle(settleRequests(sample));
          // Its healthy self, the baseline of its next watch: a loop seen in epoll_wait that later sleeps in a handler is a frozen loop.
          this.baselines.set(pid, sample);
        }
        watcher.close();
      }
    });
    for (const type of ['hang', 'recover', 'exit', 'error'] as const) watcher.on(type, forward);
    watcher.once('close', () => {
      if (this.watched.get(pid) === entry) this.watched.delete(pid);
    });
  }

  /** Settled threads are left out of the candidates from the next pass on (a new scanner after a timeout starts afresh). */
  private settle(requests: number[]): void {
    if (requests.length > 0) this.scanner?.settle(Float64Array.from(requests));
  }
}

/** Watch every process of this host (Linux): `for await (const event of watchHost({ exclude: [{ name: '^sshd$' }] }))`. */
export function watchHost(options: HostWatchOptions = {}): HostWatcher {
  return new HostWatcher(options);
}
