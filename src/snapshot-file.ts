/** readSnapshot / writeSnapshot: the one snapshot format, validated on the way in. */
import * as fs from 'node:fs/promises';
import { IokitSnapError } from './errors';
import type { Snapshot } from './types';
import { writeFileSafely, type WriteFileOptions } from './write-file';

export const SNAPSHOT_FORMAT = 'iokit-snap/1';

function invalid(where: string, what: string): never {
  throw new IokitSnapError('EINVAL', `${where}: ${what}. Expected an iokit-snap/1 snapshot as written by \`iokit-snap snapshot -o FILE\`.`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Check the shape of a parsed snapshot; throws EINVAL naming the first bad field. */
export function validateSnapshot(value: unknown, where = 'snapshot'): Snapshot {
  if (!isObject(value)) invalid(where, 'not a JSON object');
  if (value.format !== SNAPSHOT_FORMAT) {
    invalid(where, `format is ${JSON.stringify(value.format)}, not "${SNAPSHOT_FORMAT}"`);
  }
  if (typeof value.takenAt !== 'string') invalid(where, 'takenAt must be an ISO 8601 string');
  if (typeof value.monotonicNs !== 'number') invalid(where, 'monotonicNs must be a number');
  if (!isObject(value.host) || typeof value.host.platform !== 'string') invalid(where, 'host.platform is missing');
  if (!Array.isArray(value.accelerators)) invalid(where, 'accelerators must be an array');
  value.accelerators.forEach((a, i) => {
    if (!isObject(a) || typeof a.id !== 'string' || typeof a.name !== 'string') invalid(where, `accelerators[${i}] needs string id and name`);
  });
  if (!Array.isArray(value.processes)) invalid(where, 'processes must be an array');
  value.processes.forEach((p, i) => {
    if (!isObject(p) || typeof p.pid !== 'number' || !Array.isArray(p.threads)) invalid(where, `processes[${i}] needs a numeric pid and a threads array`);
    if (typeof p.sampledAtNs !== 'number') invalid(where, `processes[${i}].sampledAtNs must be a number`);
    p.threads.forEach((t, j) => {
      if (!isObject(t) || typeof t.tid !== 'number' || typeof t.state !== 'string') {
        invalid(where, `processes[${i}].threads[${j}] needs a numeric tid and a state`);
      }
    });
  });
  if (!Array.isArray(value.limits)) invalid(where, 'limits must be an array');
  return value as unknown as Snapshot;
}

/** Parse snapshot JSON text. */
export function parseSnapshot(text: string, where = 'snapshot'): Snapshot {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    invalid(where, `not valid JSON (${(error as Error).message})`);
  }
  return validateSnapshot(parsed, where);
}

/** Read a snapshot from a file path, or from JSON text (anything starting with `{`). */
export async function readSnapshot(pathOrText: string): Promise<Snapshot> {
  if (typeof pathOrText !== 'string' || pathOrText.length === 0) {
    throw new IokitSnapError('EINVAL', 'readSnapshot needs a file path or snapshot JSON text');
  }
  if (pathOrText.trimStart().startsWith('{')) return parseSnapshot(pathOrText);
  let text: string;
  try {
    text = await fs.readFile(pathOrText, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IokitSnapError(
      code === 'EACCES' || code === 'EPERM' ? 'EPERM' : 'EINVAL',
      `cannot read snapshot ${pathOrText}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return parseSnapshot(text, pathOrText);
}

/**
 * Write a snapshot as JSON (validated first, written whole). Never writes through a symbolic
 * link at the path; with `replace: false` an existing file there is an error, not replaced.
 */
export async function writeSnapshot(path: string, snapshot: Snapshot, options: WriteFileOptions = {}): Promise<void> {
  validateSnapshot(snapshot);
  try {
    await writeFileSafely(path, JSON.stringify(snapshot, null, 2) + '\n', options);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IokitSnapError(code === 'EACCES' || code === 'EPERM' ? 'EPERM' : 'EINVAL', `cannot write snapshot ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
