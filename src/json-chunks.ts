/**
 * The one way iokit-snap writes a JSON document (a snapshot, a report): in pieces.
 *
 * A document can be larger than one string may be: a 150 MB crash report imports to
 * more than a gigabyte of indented JSON, and V8 caps a string at about 512 M characters
 * (buffer.constants.MAX_STRING_LENGTH), so JSON.stringify of it fails with "Invalid string
 * length". jsonChunks() writes the same text as JSON.stringify(value, null, 2), as a
 * sequence of strings of about a megabyte, so what iokit-snap accepts it can also save.
 * A module of its own, with no imports: `threads --json` writes with it and loads nothing else.
 */
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
