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

type Path = (string | number)[];

/** A check throws SchemaMismatch naming `path` and what was expected there. */
type Check = (value: unknown, path: Path) => void;

export class SchemaMismatch extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${path || 'the document'} must be ${expected}, got ${got}`);
  }
}

function pathText(path: Path): string {
  let text = '';
  for (const part of path) text += typeof part === 'number' ? `[${part}]` : text === '' ? part : `.${part}`;
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

function mismatch(path: Path, expected: string, value: unknown): never {
  throw new SchemaMismatch(pathText(path), expected, describeValue(value));
}

const string: Check = (value, path) => {
  if (typeof value !== 'string') mismatch(path, 'a string', value);
};
const boolean: Check = (value, path) => {
  if (typeof value !== 'boolean') mismatch(path, 'true or false', value);
};
const number: Check = (value, path) => {
  if (typeof value !== 'number' || !Number.isFinite(value)) mismatch(path, 'a finite number', value);
};
const integer: Check = (value, path) => {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) mismatch(path, 'an integer', value);
};

function literal(expected: string): Check {
  return (value, path) => {
    if (value !== expected) mismatch(path, JSON.stringify(expected), value);
  };
}

function nullable(check: Check, expected: string): Check {
  return (value, path) => {
    if (value === null) return;
    const depth = path.length;
    try {
      check(value, path);
    } catch (error) {
      // Name both choices when the value itself is wrong, not a field inside it (a failure
      // inside leaves its deeper segments on the path).
      if (error instanceof SchemaMismatch && path.length === depth) mismatch(path, `${expected} or null`, value);
      throw error;
    }
  };
}

function arrayOf(item: Check): Check {
  return (value, path) => {
    if (!Array.isArray(value)) mismatch(path, 'an array', value);
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      item(value[i], path);
      path.pop();
    }
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function object(required: Record<string, Check>, optional: Record<string, Check> = {}): Check {
  const requiredEntries = Object.entries(required);
  const optionalEntries = Object.entries(optional);
  return (value, path) => {
    if (!isRecord(value)) mismatch(path, 'an object', value);
    for (const [key, check] of requiredEntries) {
      path.push(key);
      check(value[key], path);
      path.pop();
    }
    for (const [key, check] of optionalEntries) {
      const field = value[key];
      if (field === undefined) continue;
      path.push(key);
      check(field, path);
      path.pop();
    }
  };
}

/** A PropertyValue tree (the raw property image), no deeper than MAX_NESTING. */
function propertyValue(value: unknown, path: Path, depth = 0): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    number(value, path);
    return;
  }
  if (typeof value !== 'object') mismatch(path, 'a property value (string, number, boolean, null, array or object)', value);
  if (depth >= MAX_NESTING) mismatch(path, `nested no deeper than ${MAX_NESTING} levels`, value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      propertyValue(value[i], path, depth + 1);
      path.pop();
    }
    return;
  }
  for (const key of Object.keys(value)) {
    path.push(key);
    propertyValue((value as Record<string, unknown>)[key], path, depth + 1);
    path.pop();
  }
}

const properties: Check = (value, path) => {
  if (!isRecord(value)) mismatch(path, 'an object', value);
  propertyValue(value, path);
};

const nullableNumber = nullable(number, 'a finite number');
const nullableString = nullable(string, 'a string');
const nullableBoolean = nullable(boolean, 'true or false');

const limitation = object({ subject: string, field: string, code: string, reason: string }, { hint: string });

const powerState = object(
  {
    state: (value, path) => {
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isFinite(value))) mismatch(path, 'a number or a string', value);
    },
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
    blockedIn: nullable(object({ call: string, number: number }, { fd: number, target: string }), 'an object'),
  },
  {
    cpuNs: number,
    wchan: string,
    pc: number,
    stack: arrayOf(object({ pc: number, module: nullableString, offset: number })),
    kernelStack: arrayOf(string),
  },
);

const processSample = object({ pid: integer, name: string, sampledAtNs: number, threads: arrayOf(thread) });

/** What the analysis reads of a sample (ProgressTracker.step): the snapshot less its header. */
const stepInputFields = {
  monotonicNs: number,
  accelerators: arrayOf(accelerator),
  processes: arrayOf(processSample),
  limits: arrayOf(limitation),
};

const host = object({ platform: string, arch: string, osRelease: string }, { model: string });

const snapshotCheck = object({ format: literal('iokit-snap/1'), takenAt: string, host, ...stepInputFields });
const stepInputCheck = object(stepInputFields, { host: object({ platform: string }) });

/** Throws SchemaMismatch at the first field of `value` that is not the iokit-snap/1 model. */
export function checkSnapshotShape(value: unknown): void {
  snapshotCheck(value, []);
}

/** The same for a ProgressTracker sample (host and header optional). */
export function checkStepInputShape(value: unknown): void {
  stepInputCheck(value, []);
}
