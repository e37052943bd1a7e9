/**
 * The snapshot model (src/types.ts) as a schema, built once at load, and the one check
 * every way in uses: readSnapshot/parseSnapshot, compare(), watch({ baseline }) and the
 * ProgressTracker. A document that passes can be read by every reader without a
 * TypeError; one that does not is named by the path of its first bad field
 * ("processes[0].threads[3].blockedIn.call").
 *
 * Unknown fields are allowed (later versions only add fields, and those are optional);
 * a known optional field may be absent but not of another type. Numbers must be finite
 * (JSON reads 1e400 as Infinity), pids and tids integers.
 *
 * Checked once per object. The objects that passed (a whole snapshot or tracker sample, and
 * inside one each thread list and each accelerator) are remembered in WeakSets
 * (checked-objects.ts), as are those the library made itself (snapshot(), the thread
 * samplers, sampleAccelerators: markProduced*), and compare() and the tracker do not walk
 * them again: a sample of 10,000 threads costs one WeakSet lookup per thread list, not a walk
 * of every field. A caller who changes a remembered object afterwards is not checked again
 * (see checkStepInputShape); validateSnapshot() always walks everything.
 */
import { fitAccelerators, fitSnapshots, fitStepInputs, fitThreadLists } from './checked-objects';
import { describeValue } from './describe-value';
import { MAX_NESTING } from './input-limits';

export { describeValue };

/**
 * A check returns undefined when the value fits, else a Mismatch whose path segments are
 * added by each container on the way out (innermost first): nothing is built for the
 * path on the way down, so a valid document costs only the checks themselves.
 */
class Mismatch {
  readonly segments: (string | number)[] = [];
  constructor(
    readonly expected: string,
    readonly value: unknown,
  ) {}
}

type Check = (value: unknown) => Mismatch | undefined;

/**
 * False while validateSnapshot() walks a document: then nothing remembered is taken on trust
 * (a caller may have changed it since), and what passes is remembered again.
 */
let trustRemembered = true;

/**
 * `check`, skipped for an object in `fits` (when trusting); what passes goes into `fits`,
 * what fails comes out of it (a remembered object that was changed and checked again).
 */
function remembered(fits: WeakSet<object>, check: Check): Check {
  return (value) => {
    // WeakSet.has and .delete answer false for a primitive; add is reached only for objects.
    if (trustRemembered && fits.has(value as object)) return undefined;
    const mismatch = check(value);
    if (mismatch === undefined) fits.add(value as object);
    else fits.delete(value as object);
    return mismatch;
  };
}

export class SchemaMismatch extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${path || 'the document'} must be ${expected}, got ${got}`);
  }
}

function pathText(segments: (string | number)[]): string {
  let text = '';
  for (let i = segments.length - 1; i >= 0; i--) {
    const part = segments[i];
    text += typeof part === 'number' ? `[${part}]` : text === '' ? part : `.${part}`;
  }
  return text;
}


const string: Check = (value) => (typeof value === 'string' ? undefined : new Mismatch('a string', value));
const boolean: Check = (value) => (typeof value === 'boolean' ? undefined : new Mismatch('true or false', value));
const number: Check = (value) => (typeof value === 'number' && Number.isFinite(value) ? undefined : new Mismatch('a finite number', value));
const integer: Check = (value) => (typeof value === 'number' && Number.isSafeInteger(value) ? undefined : new Mismatch('an integer', value));
const nonNegativeNumber: Check = (value) =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0 ? undefined : new Mismatch('a non-negative number', value);

function nullable(check: Check, expected: string): Check {
  return (value) => {
    if (value === null) return undefined;
    const mismatch = check(value);
    // Name both choices when the value itself is wrong, not a field inside it.
    return mismatch !== undefined && mismatch.segments.length === 0 ? new Mismatch(`${expected} or null`, value) : mismatch;
  };
}

/** `fits`, when given, is a faster test that accepts only what `item` accepts (it may refuse more: `item` then decides). */
function arrayOf(item: Check, fits?: (value: unknown) => boolean): Check {
  return (value) => {
    if (!Array.isArray(value)) return new Mismatch('an array', value);
    for (let i = 0; i < value.length; i++) {
      if (fits !== undefined && fits(value[i])) continue;
      const mismatch = item(value[i]);
      if (mismatch !== undefined) {
        mismatch.segments.push(i);
        return mismatch;
      }
    }
    return undefined;
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function object(required: Record<string, Check>, optional: Record<string, Check> = {}): Check {
  const keys = [...Object.keys(required), ...Object.keys(optional)];
  const checks = [...Object.values(required), ...Object.values(optional)];
  const requiredCount = Object.keys(required).length;
  return (value) => {
    if (!isRecord(value)) return new Mismatch('an object', value);
    for (let i = 0; i < keys.length; i++) {
      const field = value[keys[i]];
      if (field === undefined && i >= requiredCount) continue;
      const mismatch = checks[i](field);
      if (mismatch !== undefined) {
        mismatch.segments.push(keys[i]);
        return mismatch;
      }
    }
    return undefined;
  };
}

/** A PropertyValue tree (the raw property image), no deeper than MAX_NESTING. */
function propertyValue(value: unknown, depth: number): Mismatch | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return number(value);
  if (typeof value !== 'object') return new Mismatch('a property value (string, number, boolean, null, array or object)', value);
  if (depth >= MAX_NESTING) return new Mismatch(`nested no deeper than ${MAX_NESTING} levels`, value);
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  for (const key of keys) {
    const mismatch = propertyValue((value as Record<string | number, unknown>)[key], depth + 1);
    if (mismatch !== undefined) {
      mismatch.segments.push(key);
      return mismatch;
    }
  }
  return undefined;
}

const properties: Check = (value) => (isRecord(value) ? propertyValue(value, 0) : new Mismatch('an object', value));

const nullableNumber = nullable(number, 'a finite number');
const nullableString = nullable(string, 'a string');
const nullableBoolean = nullable(boolean, 'true or false');

const limitation = object({ subject: string, field: string, code: string, reason: string }, { hint: string });

const powerState = object(
  {
    state: (value) =>
      typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value)) ? undefined : new Mismatch('a number or a string', value),
    maxState: nullableNumber,
    desiredState: nullableNumber,
    capabilityFlags: nullableNumber,
    runtimeStatus: nullableString,
  },
  { machineState: nullableNumber, performanceState: nullableNumber, drawMilliwatts: nullableNumber },
);

const accelerator = object(
  {
    id: string,
    name: string,
    className: string,
    classChain: arrayOf(string),
    vendor: nullableString,
    model: nullableString,
    busy: nullable(object({ count: number, timeNs: nullableNumber }), 'an object'),
    serviceState: nullable(object({ registered: boolean, matched: boolean, active: boolean }), 'an object'),
    power: nullable(powerState, 'an object'),
    probeScore: nullableNumber,
    utilization: nullable(object({ devicePercent: nullableNumber, rendererPercent: nullableNumber, tilerPercent: nullableNumber }), 'an object'),
    memory: nullable(object({ inUseBytes: nullableNumber, allocatedBytes: nullableNumber }), 'an object'),
    recovery: nullable(object({ count: number, lastTime: nullableNumber }), 'an object'),
    queues: nullable(arrayOf(object({ id: number, submitted: number, finished: number, state: string })), 'an array'),
  },
  {
    location: nullableString,
    retainCount: nullableNumber,
    commandSubmissionEnabled: nullableBoolean,
    deviceNodes: arrayOf(string),
    health: nullable(object({ gpuLost: nullableBoolean, resetRequired: nullableBoolean }), 'an object'),
    properties,
  },
);

// pc and offset are null where an imported report does not print them (types.ts Frame).
const frame = object(
  { pc: nullableNumber, module: nullableString, offset: nullableNumber },
  { symbol: nullableString, symbolOffset: nullableNumber, text: string, unreliable: boolean, samples: number, inlined: boolean },
);

// A Go goroutine (types.ts GoroutineSample); status is any string, as a thread's state is.
const goroutine = object(
  {
    goid: integer,
    status: string,
    waitReason: nullableString,
    waitSinceNs: nullableNumber,
    system: boolean,
    start: nullableString,
    createdBy: nullable(frame, 'an object'),
    frames: arrayOf(frame),
  },
  { tid: integer },
);

// kind is any string: a later version may name a new kind of peer.
const peer = object(
  { kind: string },
  { local: string, remote: string, pids: arrayOf(object({ pid: integer, name: string })), sampled: boolean, queued: boolean, inferred: boolean },
);

const thread = object(
  {
    tid: integer,
    name: nullableString,
    // Any string: a later version may name a new state; the rules treat an unknown one as unknown.
    state: string,
    userNs: number,
    systemNs: number,
    contextSwitches: nullable(object({ voluntary: number, involuntary: number }), 'an object'),
    suspendCount: nullableNumber,
    blockedIn: nullable(
      object(
        { call: string, number: number },
        { fd: number, target: string, joining: integer, driver: string, via: string, lock: string, futex: object({ address: number, op: string, value: number }), peer },
      ),
      'an object',
    ),
  },
  {
    cpuNs: number,
    runDelayNs: number,
    offCpuNs: nonNegativeNumber,
    wchan: string,
    pc: number,
    stack: arrayOf(frame),
    kernelStack: arrayOf(string),
    kernelFrames: arrayOf(frame),
    main: boolean,
    queue: string,
    samples: number,
    heldMs: nullableNumber,
    blockedBy: object({ pid: nullableNumber, tid: nullableNumber, name: nullableString, text: string }),
  },
);

const finite = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value);
const nullOrFinite = (value: unknown): boolean => value === null || finite(value);
const nullOrString = (value: unknown): boolean => value === null || typeof value === 'string';

/** A user-stack frame as the Linux and Mach walkers write it: `frame` less the imported reports' fields. */
function frameFits(value: unknown): boolean {
  if (!isRecord(value)) return false;
  const f = value as Record<string, unknown>;
  return (
    nullOrFinite(f.pc) &&
    nullOrString(f.module) &&
    nullOrFinite(f.offset) &&
    (f.symbol === undefined || nullOrString(f.symbol)) &&
    (f.symbolOffset === undefined || nullOrFinite(f.symbolOffset)) &&
    f.text === undefined &&
    f.unreliable === undefined &&
    f.samples === undefined
  );
}

function stringsFit(value: unknown): boolean {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) if (typeof value[i] !== 'string') return false;
  return true;
}

function framesFit(value: unknown): boolean {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) if (!frameFits(value[i])) return false;
  return true;
}

function futexFits(value: unknown): boolean {
  return isRecord(value) && finite(value.address) && typeof value.op === 'string' && finite(value.value);
}

/**
 * The thread check written out by hand: a process may have 10,000 threads, each with a
 * kernel stack as root and a user stack with --stacks. It accepts a subset of what
 * `thread` accepts (the imported reports' fields send the thread to the full check), so
 * the two cannot disagree on a pass.
 */
function threadFits(value: unknown): boolean {
  if (!isRecord(value)) return false;
  const t = value as Record<string, unknown> & { contextSwitches?: Record<string, unknown> | null; blockedIn?: Record<string, unknown> | null };
  const switches = t.contextSwitches;
  const blocked = t.blockedIn;
  return (
    typeof t.tid === 'number' &&
    Number.isSafeInteger(t.tid) &&
    nullOrString(t.name) &&
    typeof t.state === 'string' &&
    finite(t.userNs) &&
    finite(t.systemNs) &&
    (switches === null || (isRecord(switches) && finite(switches.voluntary) && finite(switches.involuntary))) &&
    nullOrFinite(t.suspendCount) &&
    (blocked === null ||
      (isRecord(blocked) &&
        typeof blocked.call === 'string' &&
        finite(blocked.number) &&
        (blocked.fd === undefined || finite(blocked.fd)) &&
        (blocked.target === undefined || typeof blocked.target === 'string') &&
        (blocked.joining === undefined || Number.isSafeInteger(blocked.joining)) &&
        (blocked.futex === undefined || futexFits(blocked.futex)) &&
        blocked.driver === undefined &&
        blocked.via === undefined &&
        blocked.lock === undefined &&
        blocked.peer === undefined)) &&
    (t.cpuNs === undefined || finite(t.cpuNs)) &&
    (t.runDelayNs === undefined || finite(t.runDelayNs)) &&
    (t.offCpuNs === undefined || (finite(t.offCpuNs) && (t.offCpuNs as number) >= 0)) &&
    (t.wchan === undefined || typeof t.wchan === 'string') &&
    (t.pc === undefined || finite(t.pc)) &&
    (t.stack === undefined || framesFit(t.stack)) &&
    (t.kernelStack === undefined || stringsFit(t.kernelStack)) &&
    // Imported reports' fields: rare, so they take the full check.
    t.kernelFrames === undefined &&
    t.main === undefined &&
    t.queue === undefined &&
    t.samples === undefined &&
    t.heldMs === undefined &&
    t.blockedBy === undefined
  );
}

const reportFacts = object(
  { format: string, samples: nullableNumber, sampledMs: nullableNumber, unresponsiveMs: nullableNumber, notes: arrayOf(string) },
  { topOfStack: arrayOf(object({ symbol: string, module: nullableString, samples: number })) },
);

const processSample = object(
  { pid: integer, name: string, sampledAtNs: number, threads: remembered(fitThreadLists, arrayOf(thread, threadFits)) },
  { abi: string, ppid: integer, peerOf: integer, report: reportFacts, goVersion: nullableString, goroutines: arrayOf(goroutine) },
);

/** What the analysis reads of a sample (ProgressTracker.step): the snapshot less its header. */
const stepInputFields = {
  monotonicNs: number,
  accelerators: arrayOf(remembered(fitAccelerators, accelerator)),
  processes: arrayOf(processSample),
  limits: arrayOf(limitation),
};

const host = object({ platform: string, arch: string, osRelease: string }, { model: string });

// format is checked by validateSnapshot before this, with a message of its own.
const snapshotFields = object({ format: string, takenAt: string, host, ...stepInputFields }, { source: object({ format: string, lines: number }) });
const stepInputObject = object(stepInputFields, { host: object({ platform: string }) });

const rememberedSnapshot = remembered(fitSnapshots, snapshotFields);
/** A whole snapshot fits a tracker sample too. */
const snapshotCheck: Check = (value) => {
  const mismatch = rememberedSnapshot(value);
  if (mismatch === undefined) fitStepInputs.add(value as object);
  else fitStepInputs.delete(value as object);
  return mismatch;
};
const stepInputCheck = remembered(fitStepInputs, stepInputObject);

/**
 * Throws SchemaMismatch at the first field of `value` that is not the iokit-snap/1 model.
 * Walks the whole document, whatever was remembered of it (validateSnapshot: a caller
 * asks for a check), and remembers it and its parts when it fits.
 */
export function checkSnapshotShape(value: unknown): void {
  trustRemembered = false;
  try {
    raise(snapshotCheck(value));
  } finally {
    trustRemembered = true;
  }
}

/**
 * The same for a ProgressTracker sample (host and header optional), as compare(), watch()
 * and the tracker check their arguments: an object that fitted before (checked here or by
 * validateSnapshot, or made by the library) is not walked again, nor is a thread list or an
 * accelerator that did. A change made to such an object after it was checked is therefore
 * not seen: a field of the wrong type put there can make the analysis throw a TypeError or
 * judge from the wrong value. Change a copy (a new object is checked on first use), or call
 * validateSnapshot() again after the change.
 */
export function checkStepInputShape(value: unknown): void {
  raise(stepInputCheck(value));
}

function raise(mismatch: Mismatch | undefined): void {
  if (mismatch !== undefined) throw new SchemaMismatch(pathText(mismatch.segments), mismatch.expected, describeValue(mismatch.value));
}
