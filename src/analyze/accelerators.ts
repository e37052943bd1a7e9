/**
 * Accelerator findings: what changed in the GPU services between two samples. The rules
 * read the model only, so they work the same on IOKit services and on Linux PCI devices,
 * and each one fires only on the fields a platform gives (a null field is never a change).
 */
import type { Accelerator, ThreadSample } from '../types';
import { formatMs } from './format';
import type { Evidence, Finding, FindingKind, Severity } from './types';

/** A power transition seen in consecutive samples: IOPowerManagement.DesiredPowerState / MachineState. */
export interface Transition {
  desired: number | null;
  machine: number | null;
  sinceNs: number;
  samples: number;
}

export interface AcceleratorContext {
  /** Monotonic ns of the newer sample. */
  nowNs: number;
  /** Time between the two samples, ms; null when unknown. */
  windowMs: number | null;
  stallMs: number;
  /** Power transitions carried from sample to sample (watch) or from the one earlier sample (compare); updated in place. */
  transitions: Map<string, Transition>;
  /** Threads of the newer sample blocked on a device node, by node. */
  blockedOnNode: Map<string, { pid: number; thread: ThreadSample }>;
}

const D_STATES = ['D0', 'D1', 'D2', 'D3hot', 'D3cold'];

/** The queue state in which AGX reports nothing in flight (SchedulerState BusyWorkQueues "Idle"). */
const IDLE_QUEUE = /^idle$/i;

function subjectOf(a: Accelerator): string {
  return a.id !== '' ? `accelerator ${a.name} ${a.id}` : `accelerator ${a.name} (no registry id)`;
}

/**
 * How accelerators are matched between samples: by id. An imported dump can lack ids
 * (the ioreg-archive form gives id ""); those are matched by class, name and order among
 * their like, so two id-less services are never folded into one.
 */
function keysOf(list: Accelerator[]): string[] {
  const seen = new Map<string, number>();
  return list.map((a) => {
    if (a.id !== '') return a.id;
    const base = `\0${a.className}\0${a.name}`;
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return `${base}\0${n}`;
  });
}

function finding(
  kind: FindingKind,
  severity: Severity,
  a: Accelerator,
  message: string,
  evidence: Evidence[],
  durationMs: number | null,
): Finding {
  return { kind, severity, subject: subjectOf(a), ref: { accelerator: a.id }, message, evidence, durationMs };
}

/** Deeper is larger: macOS power state indexes count up to full power, PCI D-states count down. */
function powerDrop(before: number | string, after: number | string): boolean {
  if (typeof before === 'number' && typeof after === 'number') return after < before;
  if (typeof before === 'string' && typeof after === 'string') {
    const b = D_STATES.indexOf(before);
    const a = D_STATES.indexOf(after);
    return b >= 0 && a >= 0 && a > b;
  }
  return false;
}

function pegged(u: Accelerator['utilization']): number | null {
  if (u === null) return null;
  const values = [u.devicePercent, u.rendererPercent, u.tilerPercent].filter((v): v is number => v !== null);
  if (values.length === 0) return null;
  const top = Math.max(...values);
  return top >= 99 ? top : null;
}

/** The findings for one accelerator present in both samples. */
function changed(b: Accelerator, a: Accelerator, ctx: AcceleratorContext, out: Finding[]): void {
  const window = ctx.windowMs;
  // Recovery: the driver reset the GPU (AGX/Intel PerformanceStatistics recoveryCount).
  if (b.recovery !== null && a.recovery !== null && a.recovery.count > b.recovery.count) {
    out.push(
      finding(
        'recovery',
        'critical',
        a,
        `GPU recovery count ${b.recovery.count} → ${a.recovery.count}: the driver reset the GPU after a fault or a hung command buffer; look for GPU restart reports in the system log`,
        [
          { field: 'recovery.count', before: b.recovery.count, after: a.recovery.count },
          { field: 'recovery.lastTime', before: b.recovery.lastTime, after: a.recovery.lastTime },
        ],
        window,
      ),
    );
  }
  if (a.health?.gpuLost === true || a.health?.resetRequired === true) {
    const lost = a.health.gpuLost === true;
    out.push(
      finding(
        'gpu-lost',
        'critical',
        a,
        lost
          ? 'NVML reports the GPU lost (fallen off the bus): every call into the driver will fail or hang; the machine needs a GPU reset or a reboot'
          : 'NVML reports that the GPU needs a reset (nvidia-smi -r, or a reboot)',
        [
          { field: 'health.gpuLost', before: b.health?.gpuLost ?? null, after: a.health.gpuLost },
          { field: 'health.resetRequired', before: b.health?.resetRequired ?? null, after: a.health.resetRequired },
        ],
        null,
      ),
    );
  }
  // IOKit busy state: registration, matching or termination in progress. Not GPU work.
  if (b.busy !== null && a.busy !== null) {
    const grew = b.busy.timeNs !== null && a.busy.timeNs !== null && a.busy.timeNs > b.busy.timeNs;
    if (a.busy.count > 0 && (b.busy.count === 0 || grew)) {
      out.push(
        finding(
          'busy',
          'warning',
          a,
          b.busy.count === 0
            ? `IOKit busy count ${b.busy.count} → ${a.busy.count}: registration, matching or termination of the service is in progress (this is IOService busy state, not GPU work); if it stays non-zero, a driver is stuck in start or stop`
            : `IOKit busy count stayed at ${a.busy.count} and busy time grew by ${formatMs((a.busy.timeNs! - b.busy.timeNs!) / 1e6)}: matching or termination did not finish (IOService busy state, not GPU work)`,
          [
            { field: 'busy.count', before: b.busy.count, after: a.busy.count },
            { field: 'busy.timeNs', before: b.busy.timeNs, after: a.busy.timeNs },
          ],
          window,
        ),
      );
    } else if (grew) {
      out.push(
        finding(
          'busy',
          'info',
          a,
          `IOKit busy time grew by ${formatMs((a.busy.timeNs! - b.busy.timeNs!) / 1e6)} (busy count is 0 again): the service went through registration, matching or termination in between (not GPU work)`,
          [{ field: 'busy.timeNs', before: b.busy.timeNs, after: a.busy.timeNs }],
          window,
        ),
      );
    }
  }
  if (b.serviceState !== null && a.serviceState !== null) {
    for (const field of ['active', 'registered', 'matched'] as const) {
      if (b.serviceState[field] && !a.serviceState[field]) {
        out.push(
          finding(
            'service-state',
            field === 'active' ? 'critical' : 'warning',
            a,
            field === 'active'
              ? 'the service is no longer active: it is being terminated (the driver is going away or restarting)'
              : `the service is no longer ${field}`,
            [{ field: `serviceState.${field}`, before: true, after: false }],
            window,
          ),
        );
      }
    }
  }
  if (b.commandSubmissionEnabled === true && a.commandSubmissionEnabled === false) {
    out.push(
      finding(
        'command-submission-disabled',
        'critical',
        a,
        'the driver stopped accepting command buffers (CommandSubmissionEnabled true → false): GPU work submitted now waits forever',
        [{ field: 'commandSubmissionEnabled', before: true, after: false }],
        window,
      ),
    );
  }
  if (b.power !== null && a.power !== null && powerDrop(b.power.state, a.power.state)) {
    out.push(
      finding(
        'power-dropped',
        'warning',
        a,
        `power state dropped ${b.power.state} → ${a.power.state}${
          a.power.maxState !== null ? ` (max ${a.power.maxState})` : ''
        }: the device is powered down; a thread that waits on it waits for the wake-up`,
        [{ field: 'power.state', before: b.power.state, after: a.power.state }],
        window,
      ),
    );
  }
  if (b.probeScore !== null && a.probeScore !== null && a.probeScore !== b.probeScore) {
    out.push(
      finding(
        'probe-score-changed',
        'warning',
        a,
        `probe score ${b.probeScore} → ${a.probeScore}: the service was matched again`,
        [{ field: 'probeScore', before: b.probeScore, after: a.probeScore }],
        window,
      ),
    );
  }
  // Scheduler queues: work submitted, none finished. Only over a window of at least stallMs:
  // a GPU in the middle of a long command buffer finishes nothing for a while, normally.
  const longEnough = window !== null && window >= ctx.stallMs;
  let finishedAny = false;
  let queuesKnown = false;
  if (a.queues !== null && b.queues !== null) {
    const earlier = new Map(b.queues.map((q) => [q.id, q]));
    for (const q of a.queues) {
      const p = earlier.get(q.id);
      if (p === undefined) continue;
      queuesKnown = true;
      if (q.finished !== p.finished) {
        finishedAny = true;
        continue;
      }
      if (!longEnough) continue;
      const gapBefore = p.submitted - p.finished;
      const gapAfter = q.submitted - q.finished;
      if (gapAfter > gapBefore) {
        out.push(
          finding(
            'queue-stalled',
            'critical',
            a,
            `queue ${q.id}: ${q.submitted - p.submitted} submitted, none finished in ${formatMs(window!)} (pending ${gapBefore} → ${gapAfter}, state ${q.state}): the GPU stopped completing work`,
            [
              { field: `queues[${q.id}].submitted`, before: p.submitted, after: q.submitted },
              { field: `queues[${q.id}].finished`, before: p.finished, after: q.finished },
              { field: `queues[${q.id}].state`, before: p.state, after: q.state },
            ],
            window,
          ),
        );
      } else if (gapAfter > 0 && !(gapAfter === 1 && IDLE_QUEUE.test(q.state))) {
        // One outstanding on a queue the driver calls Idle is how AGX counts, not work in
        // flight: the real M4 capture shows submitted = finished + 1 on both of its idle
        // queues. More than one pending, or any other state, is work that does not finish.
        out.push(
          finding(
            'queue-stalled',
            'warning',
            a,
            `queue ${q.id}: ${gapAfter} pending, none finished in ${formatMs(window!)} (state ${q.state})`,
            [
              { field: `queues[${q.id}].submitted`, before: p.submitted, after: q.submitted },
              { field: `queues[${q.id}].finished`, before: p.finished, after: q.finished },
            ],
            window,
          ),
        );
      }
    }
  }
  // Queue counters judge utilization only over a long enough window (as above).
  const queuesJudge = queuesKnown && longEnough;
  const top = pegged(a.utilization);
  if (top !== null && (!queuesJudge || !finishedAny)) {
    const before = pegged(b.utilization);
    if (queuesJudge || before !== null) {
      out.push(
        finding(
          'utilization-pegged',
          queuesJudge ? 'warning' : 'info',
          a,
          queuesJudge
            ? `utilization at ${top}% while no queue finished any work: the GPU is busy on something that does not complete`
            : `utilization at ${top}% in both samples; ${
                !queuesKnown
                  ? 'this device gives no queue counters, so whether work completes is unknown'
                  : window === null
                    ? 'the time between the samples is unknown, so the queue counters cannot tell whether work completes'
                    : `the samples are ${formatMs(window)} apart, too short (under ${formatMs(ctx.stallMs)}) for the queue counters to tell whether work completes`
              }`,
          [
            { field: 'utilization.devicePercent', before: b.utilization?.devicePercent ?? null, after: a.utilization!.devicePercent },
            { field: 'utilization.rendererPercent', before: b.utilization?.rendererPercent ?? null, after: a.utilization!.rendererPercent },
            { field: 'utilization.tilerPercent', before: b.utilization?.tilerPercent ?? null, after: a.utilization!.tilerPercent },
          ],
          window,
        ),
      );
    }
  }
}

/** `b` is the same service in the earlier sample, when it was there. */
function transitionFindings(a: Accelerator, key: string, b: Accelerator | undefined, ctx: AcceleratorContext, out: Finding[]): void {
  const power = a.power;
  const desired = power?.desiredState ?? null;
  const machine = power?.machineState ?? null;
  if (desired === null && machine === null) {
    ctx.transitions.delete(key);
    return;
  }
  let t = ctx.transitions.get(key);
  if (t === undefined || t.desired !== desired || t.machine !== machine) {
    // Not tracked yet (compare() judges one pair, with no earlier steps): when the earlier
    // sample shows the same transition, it has held at least since that sample.
    const held =
      t === undefined &&
      ctx.windowMs !== null &&
      b !== undefined &&
      b.power !== null &&
      (b.power.desiredState ?? null) === desired &&
      (b.power.machineState ?? null) === machine;
    t = held ? { desired, machine, sinceNs: ctx.nowNs - ctx.windowMs! * 1e6, samples: 2 } : { desired, machine, sinceNs: ctx.nowNs, samples: 1 };
    ctx.transitions.set(key, t);
  } else {
    t.samples++;
  }
  const heldMs = (ctx.nowNs - t.sinceNs) / 1e6;
  const what = desired !== null ? `IOPowerManagement.DesiredPowerState ${desired}` : `IOPowerManagement.MachineState ${machine}`;
  const stuck = t.samples > 1 && heldMs >= ctx.stallMs;
  out.push(
    finding(
      'power-transition',
      stuck ? 'warning' : 'info',
      a,
      t.samples > 1
        ? `${what} stuck for ${t.samples} samples (${formatMs(heldMs)}), current state ${power!.state}: a power transition that does not finish; threads that need the device wait for it`
        : `${what} while the current state is ${power!.state}: a power transition is in progress`,
      [
        { field: 'power.desiredState', before: b?.power?.desiredState ?? null, after: desired },
        { field: 'power.machineState', before: b?.power?.machineState ?? null, after: machine },
        { field: 'power.state', before: b?.power?.state ?? null, after: power!.state },
      ],
      t.samples > 1 ? heldMs : null,
    ),
  );
}

/** Device nodes more than one accelerator lists (NVIDIA's /dev/nvidiactl and /dev/nvidia-uvm): they name no one device. */
function sharedNodes(list: Accelerator[]): Set<string> {
  const seen = new Set<string>();
  const shared = new Set<string>();
  for (const a of list) {
    for (const node of a.deviceNodes ?? []) {
      if (seen.has(node)) shared.add(node);
      seen.add(node);
    }
  }
  return shared;
}

/**
 * A thread inside the driver (ioctl on one of the device's own nodes) while the device is
 * off. Other calls on the node (read or poll for DRM events) wait in the DRM core for an
 * event, not in the driver for the device; a node several devices share does not say
 * which device the ioctl is for. Neither counts.
 */
function d3coldFindings(a: Accelerator, b: Accelerator | undefined, shared: Set<string>, ctx: AcceleratorContext, out: Finding[]): void {
  if (a.power?.state !== 'D3cold' || a.deviceNodes === undefined) return;
  for (const node of a.deviceNodes) {
    const blocked = ctx.blockedOnNode.get(node);
    if (blocked === undefined || blocked.thread.blockedIn!.call !== 'ioctl' || shared.has(node)) continue;
    out.push(
      finding(
        'd3cold-while-blocked',
        'critical',
        a,
        `the device is in D3cold (powered off) while pid ${blocked.pid} thread ${blocked.thread.tid} is blocked in ioctl on ${node}: the driver waits for a device that is off`,
        [{ field: 'power.state', before: b?.power?.state ?? null, after: 'D3cold' }],
        null,
      ),
    );
    return;
  }
}

/**
 * Findings between the accelerators of an earlier and a later sample. Matching is by id;
 * an id that vanished while a new one carries the same name and class is a re-created
 * service (the driver restarted it), not one gone and one new.
 */
export function acceleratorFindings(before: Accelerator[], after: Accelerator[], ctx: AcceleratorContext, out: Finding[]): void {
  const earlier = new Map<string, Accelerator>();
  const beforeKeys = keysOf(before);
  for (let i = 0; i < before.length; i++) earlier.set(beforeKeys[i], before[i]);
  const afterKeys = keysOf(after);
  const shared = ctx.blockedOnNode.size > 0 ? sharedNodes(after) : new Set<string>();
  const unmatched: Accelerator[] = [];
  for (let i = 0; i < after.length; i++) {
    const a = after[i];
    const b = earlier.get(afterKeys[i]);
    if (b === undefined) unmatched.push(a);
    else {
      earlier.delete(afterKeys[i]);
      changed(b, a, ctx, out);
    }
    transitionFindings(a, afterKeys[i], b, ctx, out);
    d3coldFindings(a, b, shared, ctx, out);
  }
  for (const a of unmatched) {
    let twin: [string, Accelerator] | undefined;
    for (const entry of earlier) {
      if (entry[1].name === a.name && entry[1].className === a.className) {
        twin = entry;
        break;
      }
    }
    if (twin !== undefined) {
      const [twinKey, b] = twin;
      earlier.delete(twinKey);
      out.push(
        finding(
          'accelerator-recreated',
          'warning',
          a,
          `${a.name} was re-created: registry id ${b.id} → ${a.id}; the driver tore the service down and started it again (a GPU restart or a driver reload)`,
          [{ field: 'id', before: b.id, after: a.id }],
          ctx.windowMs,
        ),
      );
      changed(b, a, ctx, out);
    } else {
      out.push(
        finding(
          'accelerator-appeared',
          'info',
          a,
          `${a.className || a.name} appeared (${a.id || 'no registry id'})`,
          [{ field: 'id', before: null, after: a.id }],
          ctx.windowMs,
        ),
      );
    }
  }
  for (const b of earlier.values()) {
    out.push(
      finding(
        'accelerator-disappeared',
        'critical',
        b,
        `${b.className || b.name} ${b.id || '(no registry id)'} disappeared: the service was terminated or the device fell off the bus; anything waiting on it waits forever`,
        [{ field: 'id', before: b.id, after: null }],
        ctx.windowMs,
      ),
    );
  }
  const live = new Set(afterKeys);
  for (const key of ctx.transitions.keys()) {
    if (!live.has(key)) ctx.transitions.delete(key);
  }
}
