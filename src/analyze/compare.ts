/**
 * compare(healthy, hung): what changed between a snapshot taken when things worked and one
 * taken while they hang. Two steps of the same tracker watch() uses, so a finding means
 * the same thing in a saved pair and in a live watch.
 */
import { explain } from '../explain';
import { IokitSnapError } from '../errors';
import type { Snapshot } from '../types';
import { checkCompareOptions, checkSnapshotArgument } from './checks';
import { ProgressTracker, verdictOf } from './progress';
import type { CompareOptions, Report } from './types';

/**
 * What changed between a snapshot taken while things worked and one taken while they hang:
 * the verdict ('hung' when a finding is critical, 'suspect' when one is a warning, else
 * 'healthy') and the findings that say which thread is stuck in what and for how long, and
 * what the accelerators did. Either snapshot may be an imported report (importReport()).
 *
 * @param healthy the earlier snapshot (readSnapshot(), snapshot(), importReport())
 * @param hung the later one, of the same processes
 * @param given stallMs (how long without progress is stalled, default 1000), spinRatio,
 *   expectExit (the process should have finished: a main thread waiting for events is suspect)
 * @throws IokitSnapError EINVAL when an argument is not a snapshot or an option is out of range
 */
export function compare(healthy: Snapshot, hung: Snapshot, given: CompareOptions = {}): Report {
  checkSnapshotArgument('compare()', healthy, 'the healthy (first) argument');
  checkSnapshotArgument('compare()', hung, 'the hung (second) argument');
  const options = checkCompareOptions('compare()', given);
  const disjoint = healthy.processes.length > 0 && hung.processes.length > 0 && !hung.processes.some((p) => healthy.processes.some((q) => q.pid === p.pid));
  // A report often prints no pid (lldb) or another one for the same program: it is labelled below instead.
  if (disjoint && healthy.source === undefined && hung.source === undefined) {
    // Every thread would be "new" on one side and "exited" on the other: nothing would be compared, and HEALTHY would be a lie.
    const pids = (s: Snapshot) => s.processes.map((p) => `${p.pid} (${p.name})`).join(', ');
    throw new IokitSnapError(
      'EINVAL',
      `compare(): the snapshots have no process in common (healthy: pid ${pids(healthy)}; hung: pid ${pids(hung)}): take both of the same process (snapshot --pid N), or explain each one on its own`,
    );
  }
  const notes: string[] = [];
  // An imported report (importReport) has no monotonic clock: no window between it and anything else.
  const imported = healthy.source !== undefined || hung.source !== undefined;
  const backwards = imported || hung.monotonicNs < healthy.monotonicNs;
  if (healthy.host !== undefined && hung.host !== undefined) {
    const a = healthy.host;
    const b = hung.host;
    if (a.platform !== b.platform || a.arch !== b.arch || a.osRelease !== b.osRelease || (a.model ?? '') !== (b.model ?? '')) {
      notes.push(
        `the snapshots come from different hosts or systems (${a.platform} ${a.arch} ${a.osRelease}${a.model ? ` ${a.model}` : ''} vs ${b.platform} ${b.arch} ${b.osRelease}${b.model ? ` ${b.model}` : ''}): thread ids and accelerator ids do not match between machines`,
      );
    }
  }
  const tracker = new ProgressTracker(options);
  if (imported) {
    notes.push(
      'an imported report carries no monotonic clock, so there is no window between the two: only state changes are compared, and the durations are what the later report proves by itself',
    );
  } else if (backwards) {
    notes.push(
      'the hung snapshot is not later than the healthy one on the monotonic clock (another boot, or the arguments swapped): durations are unknown, so only state changes are reported',
    );
  }
  // Without a time base nothing has "held for stallMs": compare states only.
  const earlier = backwards
    ? { ...healthy, monotonicNs: hung.monotonicNs, processes: healthy.processes.map((p) => ({ ...p, sampledAtNs: Number.POSITIVE_INFINITY })) }
    : healthy;
  const report = tracker.between(earlier, hung);
  if (backwards) {
    report.windowMs = null;
    for (const f of report.findings) if (f.ref.tid !== undefined) f.durationMs = null;
  }
  if (hung.source !== undefined) {
    // What the later report proves by itself (sample counts, hung_task durations), where the pair shows nothing.
    const seen = new Set(report.findings.map((f) => `${f.ref.pid}:${f.ref.tid}`));
    for (const f of explain(hung, { stallMs: options.stallMs }).findings) if (!seen.has(`${f.ref.pid}:${f.ref.tid}`)) report.findings.push(f); // no spread: 130,000 findings overflow the call stack
    const rank = { critical: 0, warning: 1, info: 2 };
    report.findings.sort((a, b) => rank[a.severity] - rank[b.severity] || a.kind.localeCompare(b.kind) || a.subject.localeCompare(b.subject));
    report.verdict = verdictOf(report.findings);
  }
  if (disjoint && (healthy.source !== undefined || hung.source !== undefined)) {
    notes.push('the two have no process in common (no pid matches): nothing of the first is compared with the second; the findings are what the later report proves by itself');
  }
  if (healthy.processes.length === 0 && hung.processes.length > 0) {
    notes.push('the healthy snapshot has no processes: threads have no baseline (take it with --pid)');
  }
  report.notes.push(...notes);
  return report;
}
