/**
 * readSnapshot / writeSnapshot: the one snapshot format, validated on the way in; and the
 * one way iokit-snap writes a JSON document (a snapshot, a report), in pieces.
 *
 * A document can be larger than one string may be: a 150 MB crash report imports to
 * more than a gigabyte of indented JSON, and V8 caps a string at about 512 M characters
 * (buffer.constants.MAX_STRING_LENGTH), so JSON.stringify of it fails with "Invalid string
 * length". jsonChunks() writes the same text as JSON.stringify(value, null, 2), as a
 * sequence of strings of about a megabyte, so what iokit-snap accepts it can also save.
 */
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

/** A container being written: its members left, and the indent of its lines. */
type Open =
  | { array: true; value: unknown[]; next: number; indent: string }
  | { array: false; value: Record<string, unknown>; keys: string[]; next: number; indent: string; opened: boolean };

const CHUNK_CHARS = 1 << 15;

/** A string as JSON, in pieces no longer than `max` (a 256 MB property string escapes to more than one string can hold). */
function quoted(text: string, out: (piece: string) => void, max: number): void {
  if (text.length <= max) {
    out(JSON.stringify(text));
    return;
  }
  out('"');
  for (let at = 0; at < text.length; ) {
    let end = Math.min(text.length, at + max);
    // Never between the halves of a surrogate pair: JSON.stringify keeps a pair as it is, and escapes a lone half.
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end += end - 1 > at ? -1 : 1;
    out(JSON.stringify(text.slice(at, end)).slice(1, -1));
    at = end;
  }
  out('"');
}

/** What JSON.stringify makes of a member before writing it: toJSON applied, boxed primitives unboxed. */
function prepared(value: unknown, key: string): unknown {
  if (value !== null && (typeof value === 'object' || typeof value === 'bigint')) {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') value = toJSON.call(value, key);
  }
  if (value instanceof Number) return Number(value);
  if (value instanceof String) return String(value);
  if (value instanceof Boolean) return value.valueOf();
  return value;
}

/**
 * Is the JSON of this value surely short (under about `budget` characters, escapes aside), and
 * free of toJSON? Then JSON.stringify writes it, faster than a walk. A bounded walk: it stops
 * with false as soon as the budget is spent, so a big container costs at most the budget here.
 */
function small(value: object, budget: number): boolean {
  const pending: unknown[] = [value];
  let left = budget;
  while (pending.length > 0) {
    const v = pending.pop();
    if (typeof v === 'string') left -= v.length + 4;
    else if (typeof v === 'object' && v !== null) {
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
      if (Array.isArray(v)) {
        left -= 4;
        for (let i = 0; i < v.length && left > 0; i++) pending.push(v[i]);
      } else {
        for (const key in v) {
          left -= key.length + 8;
          pending.push((v as Record<string, unknown>)[key]);
          if (left <= 0) break;
        }
      }
      left -= 4;
    } else left -= 8;
    if (left <= 0) return false;
  }
  return true;
}

/** Subtrees shorter than this are written by JSON.stringify in one piece. */
const SMALL_CHARS = 8 * 1024;

/**
 * The text of JSON.stringify(value, null, indent), as strings of about `chunkChars` each:
 * the same bytes, whatever the size of the document (an iterative walk, so depth costs no
 * stack either). Throws what JSON.stringify throws: a TypeError for a cycle or a BigInt.
 */
export function* jsonChunks(value: unknown, indent = 2, chunkChars = CHUNK_CHARS): Generator<string, void, undefined> {
  const gap = ' '.repeat(indent);
  let parts: string[] = [];
  let size = 0;
  const out = (piece: string): void => {
    parts.push(piece);
    size += piece.length;
  };
  const stack: Open[] = [];
  const ancestors = new Set<object>();
  /** Write a prepared value: a primitive at once, a container by opening it. false: nothing to write (undefined, a function). */
  const put = (v: unknown, inner: string): boolean => {
    switch (typeof v) {
      case 'string':
        quoted(v, out, chunkChars);
        return true;
      case 'number':
        out(Number.isFinite(v) ? String(v) : 'null');
        return true;
      case 'boolean':
        out(v ? 'true' : 'false');
        return true;
      case 'bigint':
        throw new TypeError('Do not know how to serialize a BigInt');
      case 'object':
        if (v === null) {
          out('null');
          return true;
        }
        if (ancestors.has(v)) throw new TypeError('Converting circular structure to JSON');
        if (Array.isArray(v) && v.length === 0) out('[]');
        else if (small(v, Math.min(SMALL_CHARS, chunkChars))) {
          // Its lines indented as deep as it sits (JSON escapes every newline inside a string).
          const text = JSON.stringify(v, null, indent);
          out(inner.length === indent ? text : text.replaceAll('\n', `\n${inner.slice(indent)}`));
        } else if (Array.isArray(v)) {
          out('[');
          ancestors.add(v);
          stack.push({ array: true, value: v, next: 0, indent: inner });
        } else {
          ancestors.add(v);
          stack.push({ array: false, value: v as Record<string, unknown>, keys: Object.keys(v), next: 0, indent: inner, opened: false });
        }
        return true;
      default:
        return false; // undefined, a function, a symbol
    }
  };
  if (!put(prepared(value, ''), gap)) return; // JSON.stringify(undefined) is undefined: nothing to write
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inner = top.indent;
    if (top.array) {
      if (top.next < top.value.length) {
        const i = top.next++;
        out(i === 0 ? `\n${inner}` : `,\n${inner}`);
        if (!put(prepared(top.value[i], String(i)), inner + gap)) out('null');
      } else {
        out(`\n${inner.slice(indent)}]`);
        ancestors.delete(top.value);
        stack.pop();
      }
    } else if (top.next < top.keys.length) {
      const key = top.keys[top.next++];
      const member = prepared(top.value[key], key);
      if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
      out(top.opened ? `,\n${inner}` : `{\n${inner}`);
      top.opened = true;
      quoted(key, out, chunkChars);
      out(': ');
      put(member, inner + gap);
    } else {
      out(top.opened ? `\n${inner.slice(indent)}}` : '{}');
      ancestors.delete(top.value);
      stack.pop();
    }
    if (size >= chunkChars) {
      yield parts.join('');
      parts = [];
      size = 0;
    }
  }
  if (size > 0) yield parts.join('');
}

/** The document as the files iokit-snap writes hold it: indented JSON and a final newline, in chunks. */
export function* documentChunks(value: unknown): Generator<string, void, undefined> {
  yield* jsonChunks(value);
  yield '\n';
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
