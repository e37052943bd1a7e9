/**
 * An XML property list (Apple's PropertyList-1.0 DTD) read in one pass over the saxes
 * tokenizer, with an explicit stack: time and memory are linear in the input and the
 * nesting depth is bounded, so no input can cost more than its size or overflow the
 * call stack. (The `plist` package used before re-parsed every dictionary value to
 * build an error message it rarely needed: exponential in the depth.)
 *
 * Values come out as what the snapshot model carries:
 *   <integer>  a number when |v| ≤ 2^53, else its exact decimal string
 *   <real>     a number (a non-finite one as its text: JSON has no NaN)
 *   <date>     an ISO 8601 string ("Invalid Date" when the text is not a date)
 *   <data>     { $data: base64 }
 *   <dict>     an object whose keys are own data properties, "__proto__" included
 */
import { SaxesParser } from 'saxes';
import type { PropertyValue } from '../types';
import { integerValue } from './ioreg-value';
import { MAX_IMPORTED_VALUES, MAX_NESTING, setOwn } from '../input-limits';

/** Why a document is not a property list, and where (1-based line, 0-based column as saxes counts). */
export class PlistSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`line ${line}, column ${column}: ${reason}`);
  }
}

const SCALARS = new Set(['key', 'string', 'integer', 'real', 'date', 'data', 'true', 'false']);
const INTEGER = /^[+-]?(?:0[xX][0-9a-fA-F]+|\d+)$/;
const REAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

type Container =
  | { kind: 'dict'; value: Record<string, PropertyValue>; key: string | null }
  | { kind: 'array'; value: PropertyValue[] }
  | { kind: 'plist'; value: PropertyValue | undefined };

function scalarValue(element: string, text: string, fail: (reason: string) => never): PropertyValue {
  switch (element) {
    case 'string':
    case 'key':
      return text;
    case 'true':
      return true;
    case 'false':
      return false;
    case 'integer': {
      const trimmed = text.trim();
      if (!INTEGER.test(trimmed)) fail(`<integer> holds ${JSON.stringify(trimmed.slice(0, 40))}, not an integer`);
      const negative = trimmed.startsWith('-');
      const digits = trimmed.replace(/^[+-]/, '');
      const magnitude = BigInt(digits);
      return integerValue(negative ? -magnitude : magnitude);
    }
    case 'real': {
      const trimmed = text.trim();
      // Past a double's range (1e400) it would be Infinity, which JSON cannot hold: kept as written, as nan and inf are.
      if (REAL.test(trimmed)) return Number.isFinite(Number(trimmed)) ? Number(trimmed) : trimmed;
      // CFPropertyList writes nan, +infinity, -infinity; JSON cannot hold them as numbers.
      if (/^[+-]?(nan|inf|infinity)$/i.test(trimmed)) return trimmed;
      return fail(`<real> holds ${JSON.stringify(trimmed.slice(0, 40))}, not a number`);
    }
    case 'date': {
      const date = new Date(text.trim());
      return Number.isNaN(date.getTime()) ? String(date) : date.toISOString();
    }
    default: // 'data'
      return { $data: Buffer.from(text, 'base64').toString('base64') };
  }
}

/** Parse an XML property list; throws PlistSyntaxError on anything that is not one. */
export function parsePlistXml(xml: string, maxValues = MAX_IMPORTED_VALUES): PropertyValue {
  const parser = new SaxesParser({ position: true });
  const stack: Container[] = [];
  let root: PropertyValue | undefined;
  let scalar: { element: string; text: string } | null = null;

  function fail(reason: string): never {
    throw new PlistSyntaxError(parser.line, parser.column, reason);
  }

  let valuesLeft = maxValues;
  const place = (value: PropertyValue, isKey: boolean): void => {
    // An array of 100 M items aborts the process; a dump never holds that many values.
    if (--valuesLeft < 0) fail(`more than ${maxValues} values, more than any ioreg dump holds (and more than fit in memory)`);
    const parent = stack[stack.length - 1];
    if (isKey && parent?.kind !== 'dict') fail('<key> outside a <dict>');
    if (parent === undefined) {
      root = value; // saxes allows one root element, so this happens once
      return;
    }
    if (parent.kind === 'dict') {
      if (isKey) {
        if (parent.key !== null) fail(`<key>${parent.key}</key> has no value before the next <key>`);
        parent.key = value as string;
        return;
      }
      const key = parent.key;
      if (key === null) fail('a value in a <dict> without a <key> before it');
      setOwn(parent.value, key, value);
      parent.key = null;
    } else if (parent.kind === 'array') {
      parent.value.push(value);
    } else {
      if (parent.value !== undefined) fail('a second value in <plist>; it holds one');
      parent.value = value;
    }
  };

  parser.on('error', (error) => fail(`not well-formed XML (${error.message.replace(/^\d+:\d+: /, '')})`));
  parser.on('opentag', (tag) => {
    if (scalar !== null) fail(`<${tag.name}> inside <${scalar.element}>, which holds only text`);
    const name = tag.name;
    if (SCALARS.has(name)) {
      scalar = { element: name, text: '' };
      return;
    }
    if (name !== 'dict' && name !== 'array' && !(name === 'plist' && stack.length === 0)) {
      fail(`<${name}> is not a property list element (plist, dict, array, key, string, integer, real, date, data, true, false)`);
    }
    if (stack.length >= MAX_NESTING) fail(`values nested deeper than ${MAX_NESTING} levels`);
    if (name === 'dict') stack.push({ kind: 'dict', value: {}, key: null });
    else if (name === 'array') stack.push({ kind: 'array', value: [] });
    else stack.push({ kind: 'plist', value: undefined });
  });
  parser.on('text', (text) => {
    if (scalar !== null) scalar.text += text;
    else if (text.trim() !== '') fail(`text ${JSON.stringify(text.trim().slice(0, 40))} outside a value element`);
  });
  parser.on('cdata', (text) => {
    if (scalar === null) fail('CDATA outside a value element');
    else scalar.text += text;
  });
  parser.on('closetag', () => {
    if (scalar !== null) {
      const { element, text } = scalar;
      scalar = null;
      if ((element === 'true' || element === 'false') && text.trim() !== '') fail(`<${element}> must be empty`);
      place(scalarValue(element, text, fail), element === 'key');
      return;
    }
    const container = stack.pop() as Container; // saxes has matched the tags already
    if (container.kind === 'dict' && container.key !== null) fail(`<key>${container.key}</key> has no value before </dict>`);
    const value = container.value;
    if (value === undefined) fail('<plist> holds no value');
    place(value, false);
  });

  parser.write(xml).close(); // a document without a root element fails in close()
  return root as PropertyValue;
}
