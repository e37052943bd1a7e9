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
 */
import { MAX_NESTING } from './input-limits';

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

/** How a bad value is shown in a message: its type, or a short literal. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'bigint') return `${value}n (a BigInt)`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return typeof value;
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
  { symbol: nullableString, symbolOffset: nullableNumber, text: string, unreliable: boolean, samples: number },
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
      object({ call: string, number: number }, { fd: number, target: string, joining: integer, driver: string, via: string, lock: string }),
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

/**
 * The thread check written out by hand: a process may have 10,000 threads and the watch
 * checks every sample. It accepts a subset of what `thread` accepts (rare optional
 * fields send the thread to the full check), so the two cannot disagree on a pass.
 */
function threadFits(value: unknown): boolean {
  if (!isRecord(value)) return false;
  const t = value as Record<string, unknown> & { contextSwitches?: Record<string, unknown> | null; blockedIn?: Record<string, unknown> | null };
  const switches = t.contextSwitches;
  const blocked = t.blockedIn;
  return (
    typeof t.tid === 'number' &&
    Number.isSafeInteger(t.tid) &&
    (t.name === null || typeof t.name === 'string') &&
    typeof t.state === 'string' &&
    finite(t.userNs) &&
    finite(t.systemNs) &&
    (switches === null || (isRecord(switches) && finite(switches.voluntary) && finite(switches.involuntary))) &&
    (t.suspendCount === null || finite(t.suspendCount)) &&
    (blocked === null ||
      (isRecord(blocked) &&
        typeof blocked.call === 'string' &&
        finite(blocked.number) &&
        (blocked.fd === undefined || finite(blocked.fd)) &&
        (blocked.target === undefined || typeof blocked.target === 'string') &&
        (blocked.joining === undefined || Number.isSafeInteger(blocked.joining)) &&
        blocked.driver === undefined &&
        blocked.via === undefined &&
        blocked.lock === undefined)) &&
    (t.cpuNs === undefined || finite(t.cpuNs)) &&
    (t.runDelayNs === undefined || finite(t.runDelayNs)) &&
    (t.offCpuNs === undefined || (finite(t.offCpuNs) && (t.offCpuNs as number) >= 0)) &&
    (t.wchan === undefined || typeof t.wchan === 'string') &&
    t.pc === undefined &&
    t.stack === undefined &&
    t.kernelStack === undefined &&
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
  { pid: integer, name: string, sampledAtNs: number, threads: arrayOf(thread, threadFits) },
  { abi: string, report: reportFacts },
);

/** What the analysis reads of a sample (ProgressTracker.step): the snapshot less its header. */
const stepInputFields = {
  monotonicNs: number,
  accelerators: arrayOf(accelerator),
  processes: arrayOf(processSample),
  limits: arrayOf(limitation),
};

const host = object({ platform: string, arch: string, osRelease: string }, { model: string });

// format is checked by validateSnapshot before this, with a message of its own.
const snapshotCheck = object({ format: string, takenAt: string, host, ...stepInputFields }, { source: object({ format: string, lines: number }) });
const stepInputCheck = object(stepInputFields, { host: object({ platform: string }) });

/** Throws SchemaMismatch at the first field of `value` that is not the iokit-snap/1 model. */
export function checkSnapshotShape(value: unknown): void {
  raise(snapshotCheck(value));
}

/** The same for a ProgressTracker sample (host and header optional). */
export function checkStepInputShape(value: unknown): void {
  raise(stepInputCheck(value));
}

function raise(mismatch: Mismatch | undefined): void {
  if (mismatch !== undefined) throw new SchemaMismatch(pathText(mismatch.segments), mismatch.expected, describeValue(mismatch.value));
}
