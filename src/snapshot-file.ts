/**
 * readSnapshot / writeSnapshot: the one snapshot format, validated on the way in, and
 * written in pieces (json-chunks.ts) whatever its size.
 */
import { IokitSnapError } from './errors';
import { documentChunks } from './json-chunks';
import { readInputFile } from './read-input';
import { checkSnapshotShape, SchemaMismatch } from './snapshot-schema';
import type { Snapshot } from './types';
import { outputError, writeFileSafely, type WriteFileOptions } from './write-file';

export { documentChunks, jsonChunks } from './json-chunks';

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


/** Write chunks to a stream, waiting whenever its buffer is full; rejects when the stream fails. */
async function toStream(stream: NodeJS.WritableStream, chunks: Iterable<string>): Promise<void> {
  for (const chunk of chunks) {
    await new Promise<void>((resolve, reject) => {
      stream.write(chunk, (error?: Error | null) => (error ? reject(error) : resolve()));
    });
  }
}

/**
 * Write a JSON document (a snapshot, a report) to a path or a stream, in chunks, whatever
 * its size. A path is written as writeFileSafely writes (never through a link; whole or not
 * at all); its errors are Node's.
 */
export async function writeDocument(target: string | NodeJS.WritableStream, value: unknown, options: WriteFileOptions = {}): Promise<void> {
  if (typeof target === 'string') await writeFileSafely(target, documentChunks(value), options);
  else await toStream(target, documentChunks(value));
}

/**
 * Write a snapshot as JSON (validated first) to a path or a stream, in chunks (a snapshot too
 * large for one string is written too). A path is written whole, mode 0600, never through a
 * symbolic link; with `replace: false` an existing file there is an error (EEXIST), not
 * replaced. A full disk is ENOSPC, a read-only file system EROFS, a missing directory ENOENT.
 */
export async function writeSnapshot(target: string | NodeJS.WritableStream, snapshot: Snapshot, options: WriteFileOptions = {}): Promise<void> {
  validateSnapshot(snapshot);
  try {
    await writeDocument(target, snapshot, options);
  } catch (error) {
    throw typeof target === 'string'
      ? outputError(error, 'snapshot', target)
      : new IokitSnapError('EIO', `cannot write the snapshot to the stream: ${(error as Error).message}`, { cause: error });
  }
}
