/** readSnapshot / writeSnapshot: the one snapshot format, validated on the way in. */
import * as fs from 'node:fs/promises';
import { IokitSnapError } from './errors';
import { readInputFile } from './read-input';
import { checkSnapshotShape, SchemaMismatch } from './snapshot-schema';
import type { Snapshot } from './types';
import { outputError, writeFileSafely, type WriteFileOptions } from './write-file';

/** The `format` every snapshot carries, and the only one readSnapshot() accepts. */
export const SNAPSHOT_FORMAT = 'iokit-snap/1';

function invalid(where: string, what: string): never {
  throw new IokitSnapError('EINVAL', `${where}: ${what}. Expected an iokit-snap/1 snapshot as written by \`iokit-snap snapshot -o FILE\`.`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Check a parsed snapshot against the whole model (src/snapshot-schema.ts); throws EINVAL
 * naming the path of the first bad field, so that nothing that passes can make a reader
 * (compare, diff, the CLI's tables) throw a TypeError later.
 */
export function validateSnapshot(value: unknown, where = 'snapshot'): Snapshot {
  if (!isObject(value)) invalid(where, 'not a JSON object');
  if (value.format !== SNAPSHOT_FORMAT) {
    invalid(where, `format is ${JSON.stringify(value.format)}, not "${SNAPSHOT_FORMAT}"`);
  }
  try {
    checkSnapshotShape(value);
  } catch (error) {
    /* c8 ignore next -- the schema throws only SchemaMismatch; anything else is a bug to see as is */
    if (!(error instanceof SchemaMismatch)) throw error;
    invalid(where, error.message);
  }
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
  const text = await readInputFile(pathOrText, 'snapshot');
  return parseSnapshot(text, pathOrText);
}

/**
 * Write a snapshot as JSON (validated first, written whole, mode 0600). Never writes through a
 * symbolic link at the path; with `replace: false` an existing file there is an error (EEXIST),
 * not replaced. A full disk is ENOSPC, a read-only file system EROFS, a missing directory ENOENT.
 */
export async function writeSnapshot(path: string, snapshot: Snapshot, options: WriteFileOptions = {}): Promise<void> {
  validateSnapshot(snapshot);
  try {
    await writeFileSafely(path, JSON.stringify(snapshot, null, 2) + '\n', options);
  } catch (error) {
    throw outputError(error, 'snapshot', path);
  }
}
