/** `iokit-snap watch --all`: every process of this host, judged as `watch --pid` judges one. */
import { formatMs, plural } from '../analyze/format';
import type { Verdict } from '../analyze/types';
import { gpuDevices } from '../host/labels';
import type { HostEvent, HostSelector, ProcessLabels } from '../host/watch';
import { UsageError } from './args';
import type { CliIO } from './io';
import { EXIT, errStyle, outStyle, write } from './io';
import { explain } from './explain';
import { paint } from './format';

/** "name=REGEX", "cgroup=PATH", "uid=N", or a bare REGEX (a name): one selector of --include/--exclude. */
export function parseSelector(text: string, option: string): HostSelector {
  const m = /^(name|cgroup|uid)=(.*)$/s.exec(text);
  const [kind, value] = m === null ? ['name', text] : [m[1], m[2]];
  if (value === '') throw new UsageError(`${option} ${JSON.stringify(text)}: give a value after ${kind}=`);
  if (kind === 'uid') {
    if (!/^\d+$/.test(value)) throw new UsageError(`${option} ${JSON.stringify(text)}: a uid is a number`);
    return { uid: Number(value) };
  }
  if (kind === 'cgroup') return { cgroup: value };
  try {
    new RegExp(value);
  } catch (error) {
    throw new UsageError(`${option} ${JSON.stringify(text)} is not a regular expression: ${(error as Error).message}`);
  }
  return { name: value };
}

/** "pid 4242 (python3, unit train.service, container docker:3f2a…, uid 1000, /dev/nvidia0)". */
export function describeProcess(l: ProcessLabels): string {
  const parts = [l.name];
  if (l.unit !== null) parts.push(`unit ${l.unit}`);
  if (l.container !== null) parts.push(`container ${l.container.length > 24 ? `${l.container.slice(0, 24)}…` : l.container}`);
  if (l.pod !== null) parts.push(`pod ${l.pod}`);
  if (l.unit === null && l.container === null && l.cgroup !== null && l.cgroup !== '/') parts.push(`cgroup ${l.cgroup}`);
  if (l.uid !== null) parts.push(`uid ${l.uid}`);
  if (l.kernel) parts.push('kernel thread');
  const gpus = gpuDevices(l.devices);
  if (gpus.length > 0) parts.push(gpus.join(' '));
  return `pid ${l.pid} (${parts.join(', ')})`;
}

export interface WatchAllArgs {
  include: HostSelector[];
  exclude: HostSelector[];
  intervalMs?: number;
  stallMs?: number;
  passMs?: number;
  forMs?: number;
  json: boolean;
  exitOnHang: boolean;
  basic: boolean;
}

export async function runWatchAll(args: WatchAllArgs, io: CliIO): Promise<number> {
  // Loaded here: only --all needs it.
  const { watchHost } = await import('../host/watch');
  const watcher = watchHost({
    include: args.include,
    exclude: args.exclude,
    intervalMs: args.intervalMs,
    stallMs: args.stallMs,
    passMs: args.passMs,
    detail: args.basic ? 'basic' : 'full',
  });
  const style = outStyle(io);
  const stop = (): void => watcher.close();
  /* c8 ignore next -- the real process's signals; tests pass their own emitter */
  const signals = io.signals ?? process;
  signals.on('SIGINT', stop);
  signals.on('SIGTERM', stop);
  io.outputClosed?.addEventListener('abort', stop);
  const timer = args.forMs !== undefined ? setTimeout(stop, args.forMs) : undefined;
  const startedAt = Date.now();
  /** Each process's verdict as last printed. */
  const verdicts = new Map<number, Verdict>();
  const hung = new Set<number>();
  /** Processes reported hung or suspect: their exit is news. */
  const reported = new Set<number>();
  let passes = 0;
  let hangs = 0;
  let failed = false;
  let counts = '';
  let last: Extract<HostEvent, { type: 'pass' }> | null = null;
  try {
    for await (const event of watcher) {
      if (event.type === 'pass') {
        passes++;
        last = event;
        const line = `${plural(event.processes, 'process', 'processes')}, ${plural(event.threads, 'thread')}: ${event.verdicts.hung} hung, ${event.verdicts.suspect} suspect, ${event.watched} watched in full`;
        if (args.json) await write(io.stdout, JSON.stringify(event) + '\n');
        else if (line !== counts) await write(io.stdout, `${event.at} ${line}\n`);
        counts = line;
        continue;
      }
      if (event.type === 'error') {
        failed = true;
        if (args.json) await write(io.stdout, JSON.stringify({ ...event, error: { code: event.error.code, message: event.error.message } }) + '\n');
        else await write(io.stderr, `${event.at} iokit-snap watch --all: ${event.error.code}: ${event.error.message}\n`);
        continue;
      }
      if (event.type === 'sample') {
        // One line when a process's verdict changes, not one per sample of every process watched in full.
        if (event.discarded !== undefined || verdicts.get(event.pid) === event.verdict) continue;
        const before = verdicts.get(event.pid);
        verdicts.set(event.pid, event.verdict);
        if (before === undefined && event.verdict === 'healthy') continue;
        if (event.verdict !== 'healthy') reported.add(event.pid);
        if (args.json) await write(io.stdout, JSON.stringify(event) + '\n');
        else if (event.verdict === 'suspect') {
          const worst = event.findings[0]; // a suspect verdict has a warning: the first finding
          await write(io.stdout, `${event.at} ${paint(style, 'yellow', 'SUSPECT')} ${describeProcess(event.labels)}: ${worst.kind}: ${worst.message}\n`);
        }
        continue;
      }
      if (event.type === 'hang') {
        hangs++;
        hung.add(event.pid);
        reported.add(event.pid);
      } else if (event.type === 'recover') hung.delete(event.pid);
      else {
        // An exit of a process that was never reported is no news: a host's processes come and go.
        hung.delete(event.pid);
        verdicts.delete(event.pid);
        if (!reported.delete(event.pid)) continue;
      }
      if (args.json) await write(io.stdout, JSON.stringify(event) + '\n');
      else if (event.type === 'hang') await write(io.stdout, `${event.at} ${paint(style, 'red', 'HUNG')} ${describeProcess(event.labels)}\n${explain(event.report, style)}`);
      else if (event.type === 'recover') await write(io.stdout, `${event.at} ${paint(style, 'green', 'RECOVERED')} ${describeProcess(event.labels)} after ${formatMs(event.hungForMs)}\n`);
      else await write(io.stdout, `${event.at} ${describeProcess(event.labels)} exited\n`);
      if (hung.size > 0 && args.exitOnHang) break;
    }
  } finally {
    watcher.close();
    await watcher.done;
    clearTimeout(timer);
    signals.off('SIGINT', stop);
    signals.off('SIGTERM', stop);
    io.outputClosed?.removeEventListener('abort', stop);
  }
  if (passes === 0 && failed) return EXIT.error;
  if (!args.json && !io.outputClosed?.aborted) {
    /* c8 ignore next -- a pass starts at once: none completed only when stopped in its first milliseconds */
    const end = last === null ? 'no pass completed' : `${last.verdicts.hung} hung and ${last.verdicts.suspect} suspect of ${plural(last.verdicts.healthy + last.verdicts.hung + last.verdicts.suspect, 'process', 'processes')} at the end`;
    await write(io.stdout, `${new Date().toISOString()} watched this host for ${formatMs(Date.now() - startedAt)}: ${plural(passes, 'pass', 'passes')}, ${plural(hangs, 'hang')}, ${end}${failed ? paint(errStyle(io), 'red', ' (errors: see stderr)') : ''}\n`);
  }
  return hung.size > 0 ? EXIT.hung : failed ? EXIT.error : EXIT.ok;
}
