/**
 * Which processes a long-running exporter watches: explicit pids, processes whose name or
 * command line matches, and the members of cgroups (a systemd unit's, a container's). It is
 * asked again every interval, so a restarted service is picked up under its new pid and an
 * exited one dropped, without restarting the exporter.
 *
 * The command line of a process is read once, when the process is first seen, never again:
 * /proc/<pid>/cmdline takes the target's mmap lock and a hung process may hold it. The name
 * (/proc/<pid>/comm) does not, and it is tried first. At most one command-line read is in
 * flight: one that does not return within its deadline leaves the rest of the system matched
 * by name only until it does, and says so in `limits`.
 *
 * The patterns are the user's and the names are anyone's: matching runs under a time budget
 * (bounded-match.ts), and a process whose name or command line a pattern cannot be matched
 * against in time is not selected, with a limit saying so, instead of holding the exporter.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { IokitSnapError } from '../errors';
import type { Limitation } from '../types';
import { BoundedMatcher } from './bounded-match';

export interface ProcessSelection {
  /** Watched while they live; a pid that exited is never watched again (its number may be reused). */
  pids?: number[];
  /** A process whose name or command line (arguments joined by spaces) matches any of these. */
  match?: (RegExp | string)[];
  /** cgroup directories (/sys/fs/cgroup/system.slice/x.service) or paths as /proc/<pid>/cgroup shows them (/system.slice/x.service). */
  cgroups?: string[];
}

export interface SelectorOptions {
  /** Read this tree instead of /proc (tests). */
  procRoot?: string;
  /** Where relative cgroup paths are found (default: the cgroup2 mount of this machine, else /sys/fs/cgroup). */
  cgroupRoot?: string;
  /** Deadline for one command-line read, ms (default 1000). */
  cmdlineTimeoutMs?: number;
  /** How long matching one name or command line against the patterns may take, ms (default 100). */
  matchBudgetMs?: number;
}

/** What one selector (one --pid, --match or --cgroup) selects now. */
export interface SelectorCount {
  kind: 'pid' | 'match' | 'cgroup';
  /** As given: the pid, the pattern (a RegExp as /source/flags), the cgroup path. */
  selector: string;
  /** Processes it selects now (iokit-snap itself never counts). */
  processes: number;
  /** Why it selects nothing, when that is known: no such process, no such cgroup. */
  reason?: string;
}

export interface Selected {
  pids: Set<number>;
  limits: Limitation[];
  /** One entry per selector, in the order given: pids, then patterns, then cgroups. */
  counts: SelectorCount[];
}

const DEFAULT_CMDLINE_TIMEOUT_MS = 1000;

function toRegExp(pattern: RegExp | string): RegExp {
  if (pattern instanceof RegExp) return pattern;
  if (typeof pattern !== 'string' || pattern === '') throw new IokitSnapError('EINVAL', 'match: give a regular expression, such as "^python" or "llama-server"');
  try {
    return new RegExp(pattern);
  } catch (error) {
    throw new IokitSnapError('EINVAL', `match: ${JSON.stringify(pattern)} is not a regular expression: ${(error as Error).message}`);
  }
}

/** Validate a selection up front, so a typo is an error at start, not an empty exporter. */
export function checkSelection(selection: ProcessSelection): { pids: number[]; match: RegExp[]; cgroups: string[] } {
  if (selection === null || typeof selection !== 'object') throw new IokitSnapError('EINVAL', 'the selection must be an object: { pids, match, cgroups }');
  const pids = selection.pids ?? [];
  const match = selection.match ?? [];
  const cgroups = selection.cgroups ?? [];
  if (!Array.isArray(pids) || !Array.isArray(match) || !Array.isArray(cgroups)) {
    throw new IokitSnapError('EINVAL', 'pids, match and cgroups must be arrays');
  }
  for (const pid of pids) {
    if (!Number.isInteger(pid) || pid < 1 || pid > 0x7fffffff) throw new IokitSnapError('EINVAL', `${String(pid)} is not a process id`);
  }
  for (const cgroup of cgroups) {
    if (typeof cgroup !== 'string' || cgroup === '') throw new IokitSnapError('EINVAL', 'cgroups: give a cgroup path such as /system.slice/ollama.service');
  }
  /* c8 ignore next -- macOS has no cgroups */
  if (cgroups.length > 0 && process.platform !== 'linux') throw new IokitSnapError('ENOTSUP', 'cgroups are a Linux facility; select by pid or match on this platform');
  return { pids: [...new Set(pids)], match: match.map(toRegExp), cgroups };
}

/** Where cgroup paths start: the mount point of the cgroup2 hierarchy in /proc/self/mountinfo ("… - cgroup2 cgroup2 rw"), else /sys/fs/cgroup. */
export function cgroupRootOf(mountinfo: string): string {
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    const mountPoint = before.split(' ')[4];
    if (after?.startsWith('cgroup2 ') && mountPoint !== undefined) return mountPoint;
  }
  return '/sys/fs/cgroup';
}

/** Pids from a cgroup.procs file: one per line. */
export function parseCgroupProcs(text: string): number[] {
  return text
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

export class ProcessSelector {
  private readonly explicit: Set<number>;
  /** The explicit pids as given (a pid that exited is forgotten, and still counted: as 0). */
  private readonly givenPids: number[];
  private readonly matcher: BoundedMatcher;
  private readonly matchLabels: string[];
  private readonly cgroups: string[];
  private readonly procRoot: string;
  private readonly cmdlineTimeoutMs: number;
  private cgroupRoot: string | undefined;
  /** What was decided for each pid seen in the process table, once: the patterns it matches (none: []). */
  private readonly decided = new Map<number, number[]>();
  /** Processes whose name or command line could not be matched within the budget: not selected, and said so. */
  private readonly givenUp = new Map<number, string>();
  /** macOS: what `ps` gave for each pid last time and what it matched (null: given up). */
  private psSeen = new Map<number, { text: string; hits: number[] | null }>();
  /** A command-line read that missed its deadline and has not returned yet. */
  private stuckRead: { pid: number; sinceMs: number } | null = null;

  constructor(selection: ProcessSelection, options: SelectorOptions = {}) {
    const checked = checkSelection(selection);
    this.givenPids = checked.pids;
    this.explicit = new Set(checked.pids);
    this.matcher = new BoundedMatcher(checked.match, options.matchBudgetMs);
    this.matchLabels = (selection.match ?? []).map((m) => (m instanceof RegExp ? String(m) : m));
    this.cgroups = checked.cgroups;
    this.procRoot = options.procRoot ?? '/proc';
    this.cgroupRoot = options.cgroupRoot;
    this.cmdlineTimeoutMs = options.cmdlineTimeoutMs ?? DEFAULT_CMDLINE_TIMEOUT_MS;
  }

  /** An explicit pid that exited: its number may be reused by an unrelated process, so it is not watched again. */
  forget(pid: number): void {
    this.explicit.delete(pid);
  }

  /** The pids to watch now, and what each selector selects. Never rejects: what cannot be read is a limit. */
  async select(): Promise<Selected> {
    const limits: Limitation[] = [];
    const counts: SelectorCount[] = [];
    const pids = new Set<number>(this.explicit);
    pids.delete(process.pid);
    for (const pid of this.givenPids) {
      const reason = pid === process.pid ? 'iokit-snap itself is never watched' : !this.explicit.has(pid) ? 'it exited' : await this.absence(pid);
      counts.push({ kind: 'pid', selector: String(pid), processes: reason === undefined ? 1 : 0, ...(reason !== undefined ? { reason } : {}) });
    }
    if (this.matcher.patterns.length > 0) {
      const perPattern = new Array<number>(this.matcher.patterns.length).fill(0);
      for (const [pid, hits] of await this.matching(limits)) {
        pids.add(pid);
        for (const p of hits) perPattern[p]++;
      }
      this.matchLabels.forEach((label, i) => counts.push({ kind: 'match', selector: label, processes: perPattern[i] }));
    }
    for (const cgroup of this.cgroups) {
      const own: Limitation[] = [];
      const members = await this.members(cgroup, own);
      for (const pid of members) pids.add(pid);
      counts.push({ kind: 'cgroup', selector: cgroup, processes: members.length, ...(own.length > 0 ? { reason: own[0].reason } : {}) });
      for (const limit of own) limits.push(limit);
    }
    return { pids, limits, counts };
  }

  /** Why an explicit pid is not there now (undefined: it is). */
  private async absence(pid: number): Promise<string | undefined> {
    if (this.procRoot !== '/proc') {
      return fs.access(path.join(this.procRoot, String(pid))).then(
        () => undefined,
        () => 'no such process',
      );
    }
    try {
      process.kill(pid, 0);
      return undefined;
    } catch (error) {
      // EPERM: it exists, owned by someone we may not signal (sampling may still be allowed).
      /* c8 ignore next -- EPERM needs a user without the right to signal it; the tests run as root */
      return (error as NodeJS.ErrnoException).code === 'EPERM' ? undefined : 'no such process';
    }
  }

  /** The matching processes, each with the patterns it matches. */
  private async matching(limits: Limitation[]): Promise<Map<number, number[]>> {
    /* c8 ignore next -- macOS has no /proc: ps gives name and arguments (proven by the macOS CI job) */
    if (process.platform === 'darwin' && this.procRoot === '/proc') return this.matchingWithPs(limits);
    let entries: string[];
    try {
      entries = await fs.readdir(this.procRoot);
    } catch (error) {
      limits.push({ subject: 'selection', field: 'match', code: String((error as NodeJS.ErrnoException).code), reason: `cannot list ${this.procRoot}: ${(error as Error).message}` });
      return new Map();
    }
    const live: number[] = [];
    const fresh: { pid: number; name: string }[] = [];
    for (const entry of entries) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === process.pid) continue;
      live.push(pid);
      if (this.decided.has(pid)) continue;
      try {
        fresh.push({ pid, name: (await fs.readFile(path.join(this.procRoot, String(pid), 'comm'), 'utf8')).replace(/\n$/, '') });
      } catch {
        // Gone while we looked.
      }
    }
    // Names first, all in one bounded batch; the command line only where no pattern matches the name.
    const byName = this.matcher.matchAll(fresh.map((f) => f.name));
    const byCommand: { pid: number; cmdline: string }[] = [];
    // The stuck read that left a process undecided in this pass: it may return before the pass
    // ends, and the pass is incomplete all the same.
    let skippedFor: { pid: number; sinceMs: number } | null = null;
    for (let i = 0; i < fresh.length; i++) {
      const { pid } = fresh[i];
      const hits = byName[i];
      if (hits === null) this.giveUp(pid, 'name');
      else if (hits.length > 0) this.decided.set(pid, hits);
      else if (this.stuckRead !== null) skippedFor = this.stuckRead;
      else {
        const cmdline = await this.readCmdline(pid);
        // Timed out now: this pass leaves it undecided even if the read returns before the pass ends.
        if (typeof cmdline === 'object' && cmdline !== null) skippedFor = cmdline;
        // A kernel thread or a zombie has an empty command line: the name is all there is.
        else if (cmdline === '') this.decided.set(pid, []);
        else if (cmdline !== null) byCommand.push({ pid, cmdline });
        // null: gone, or unreadable now; decided on a later pass
      }
    }
    const byLine = this.matcher.matchAll(byCommand.map((c) => c.cmdline));
    byCommand.forEach(({ pid }, i) => {
      const hits = byLine[i];
      if (hits === null) this.giveUp(pid, 'command line');
      else this.decided.set(pid, hits);
    });
    // A pid that left the table is forgotten: if its number comes back, it is a new process.
    const liveSet = new Set(live);
    for (const pid of this.decided.keys()) if (!liveSet.has(pid)) this.decided.delete(pid);
    for (const pid of this.givenUp.keys()) if (!liveSet.has(pid)) this.givenUp.delete(pid);
    const matched = new Map<number, number[]>();
    for (const pid of live) {
      const hits = this.decided.get(pid);
      if (hits !== undefined && hits.length > 0) matched.set(pid, hits);
    }
    this.givenUpLimits(limits);
    const stuck = this.stuckRead ?? skippedFor;
    if (stuck !== null) {
      limits.push({
        subject: 'selection',
        field: 'match',
        code: 'ETIMEDOUT',
        reason: `probe timed out: reading the command line of pid ${stuck.pid} has not returned for ${((Date.now() - stuck.sinceMs) / 1000).toFixed(1)} s; new processes are matched by name only until it does`,
        hint: 'that process may be hung holding its memory map lock; it is itself worth watching',
      });
    }
    return matched;
  }

  /** Matching this process's text did not finish in time: decided as not selected, and said so while it lives. */
  private giveUp(pid: number, what: string): void {
    this.decided.set(pid, []);
    this.givenUp.set(pid, what);
  }

  private givenUpLimits(limits: Limitation[]): void {
    for (const [pid, what] of this.givenUp) {
      limits.push({
        // Not ETIMEDOUT: nothing hung but our own pattern, and the analysis reads ETIMEDOUT as a probe that hung.
        subject: 'selection',
        field: 'match',
        code: 'ECANCELED',
        reason: `matching the ${what} of pid ${pid} against the --match patterns took more than ${this.matcher.budgetMs} ms, so it was stopped; pid ${pid} is not selected`,
        hint: 'a pattern with nested repetition such as (a+)+ backtracks exponentially on some texts: write it without, or select that process with --pid',
      });
    }
  }

  /** The command line; null when it cannot be read (gone); the stuck read, when it did not return in time. */
  private readCmdline(pid: number): Promise<string | null | { pid: number; sinceMs: number }> {
    const sinceMs = Date.now();
    return new Promise((resolve) => {
      let settled = false;
      // The read goes on after its deadline; when it returns at last, reads are allowed again.
      const finish = (value: string | null): void => {
        clearTimeout(timer);
        if (this.stuckRead?.pid === pid) this.stuckRead = null;
        if (!settled) resolve(value);
        settled = true;
      };
      const timer = setTimeout(() => {
        settled = true;
        this.stuckRead = { pid, sinceMs };
        resolve(this.stuckRead);
      }, this.cmdlineTimeoutMs);
      timer.unref();
      fs.readFile(path.join(this.procRoot, String(pid), 'cmdline')).then(
        (bytes) => finish(bytes.toString('utf8').replace(/\0+$/, '').split('\0').join(' ')),
        () => finish(null),
      );
    });
  }

  private async members(cgroup: string, limits: Limitation[]): Promise<number[]> {
    const dir = await this.cgroupDir(cgroup);
    try {
      return parseCgroupProcs(await fs.readFile(path.join(dir, 'cgroup.procs'), 'utf8')).filter((pid) => pid !== process.pid);
    } catch (error) {
      const code = String((error as NodeJS.ErrnoException).code);
      limits.push({
        subject: `cgroup ${cgroup}`,
        field: 'members',
        code,
        reason: `cannot read ${path.join(dir, 'cgroup.procs')}: ${(error as Error).message}`,
        hint:
          code === 'ENOENT'
            ? 'the cgroup does not exist (yet): give a directory under /sys/fs/cgroup or the path /proc/<pid>/cgroup shows; it is looked for again every interval'
            : undefined,
      });
      return [];
    }
  }

  private async cgroupDir(cgroup: string): Promise<string> {
    if (path.isAbsolute(cgroup)) {
      try {
        await fs.access(path.join(cgroup, 'cgroup.procs'));
        return cgroup;
      } catch {
        // Not a directory of a cgroup filesystem: a path relative to the hierarchy's root.
      }
    }
    this.cgroupRoot ??= cgroupRootOf(await fs.readFile('/proc/self/mountinfo', 'utf8'));
    return path.join(this.cgroupRoot, cgroup);
  }

  /* c8 ignore start -- macOS only: ps reads names and arguments through sysctl (proven by the macOS CI job) */
  private matchingWithPs(limits: Limitation[]): Promise<Map<number, number[]>> {
    return new Promise((resolve) => {
      execFile('ps', ['-A', '-o', 'pid=,comm=,args='], { timeout: 5000, maxBuffer: 16 << 20 }, (error, stdout) => {
        const matched = new Map<number, number[]>();
        if (error) {
          limits.push({ subject: 'selection', field: 'match', code: 'EIO', reason: `ps failed: ${error.message}` });
          return resolve(matched);
        }
        const rows: { pid: number; text: string }[] = [];
        for (const line of stdout.split('\n')) {
          const m = /^\s*(\d+)\s+(.*)$/.exec(line);
          if (m !== null && Number(m[1]) !== process.pid) rows.push({ pid: Number(m[1]), text: m[2] });
        }
        // Matched once per process and text, as on Linux: a text given up on costs its budget once.
        const fresh = rows.filter((r) => this.psSeen.get(r.pid)?.text !== r.text);
        const hitsOf = this.matcher.matchAll(fresh.map((r) => r.text));
        fresh.forEach((r, i) => this.psSeen.set(r.pid, { text: r.text, hits: hitsOf[i] }));
        const seen = new Map<number, { text: string; hits: number[] | null }>();
        this.givenUp.clear();
        for (const { pid, text } of rows) {
          const { hits } = this.psSeen.get(pid)!;
          seen.set(pid, { text, hits });
          if (hits === null) this.givenUp.set(pid, 'name and arguments');
          else if (hits.length > 0) matched.set(pid, hits);
        }
        this.psSeen = seen; // pids that left the table are forgotten
        this.givenUpLimits(limits);
        resolve(matched);
      });
    });
  }
  /* c8 ignore stop */
}
