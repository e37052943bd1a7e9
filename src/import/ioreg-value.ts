/**
 * The value grammar of `ioreg` text output, as Apple's ioreg.c prints it
 * (cfshow and friends; the same in IOKitTools-86 and in the current binary):
 *
 *   number   %qu, or 0x%qx under `-x`. Always unsigned: a negative CFNumber prints
 *            as its two's complement, so -1 reads 18446744073709551615.
 *   boolean  Yes | No
 *   string   "…", printed raw with "%s": no escapes, an inner `"` is not escaped
 *   data     <hex bytes> | <"ascii","ascii"> (one or more C strings) | <>
 *   array    (v,v,…)     set  [v,v,…]     dictionary  {"k"=v,"k"=v,…}
 *   other    <unknown object>
 *
 * Because strings are raw, a `"` ends a string only where the grammar can go on
 * after it: `,` `)` `}` `]` or the end of the line for a value, `=` for a key,
 * `,` or `>` inside data. A string holding `",` is ambiguous in ioreg's own
 * output; we read it the way the grammar allows first.
 */
import { IokitSnapError } from '../errors';
import { MAX_IMPORTED_VALUES, MAX_NESTING, setOwn } from '../input-limits';
import type { PropertyValue } from '../types';

/**
 * Why a line did not parse. `atEnd`: the text ran out while a value was still open;
 * `inString`: a string value found no quote that could close it on this line.
 */
export class ValueSyntaxError extends Error {
  constructor(
    readonly column: number,
    readonly expected: string,
    readonly atEnd: boolean,
    readonly inString: boolean,
  ) {
    super(`expected ${expected} at column ${column + 1}`);
  }
}

/** A JSON number when a double holds the integer exactly (|v| ≤ 2^53, as native/model.h), else a decimal string. */
export function integerValue(value: bigint): number | string {
  const limit = 1n << 53n;
  return value <= limit && value >= -limit ? Number(value) : value.toString();
}

type StringContext = 'key' | 'value' | 'data';

const SCALAR = /Yes|No|-?0x[0-9a-fA-F]+|-?\d+/y;
const HEX_DIGITS = /[0-9a-fA-F]*/y;

/** What may follow a closing quote, per context (see closesString). */
const CLOSERS: Record<StringContext, string> = {
  key: '`=` after the key',
  value: '`,` `)` `}` `]` or the end of the line after the string',
  data: '`,` or `>` after a string in <data>',
};

/** Values an import may still create: shared by every line of one dump (MAX_IMPORTED_VALUES). */
export interface ValueBudget {
  left: number;
}

/** The dump holds more values than MAX_IMPORTED_VALUES: its caller names the line. */
export class ValueBudgetExceeded extends Error {}

class ValueReader {
  position = 0;
  /** Open (), [] and {} around the current position: bounded, so a value cannot overflow the stack. */
  private depth = 0;
  constructor(
    readonly text: string,
    private readonly budget: ValueBudget = { left: MAX_IMPORTED_VALUES },
  ) {}

  private fail(expected: string, inString = false): never {
    throw new ValueSyntaxError(this.position, expected, this.position >= this.text.length, inString);
  }

  private skipSpaces(): void {
    while (this.position < this.text.length && (this.text[this.position] === ' ' || this.text[this.position] === '\t')) this.position++;
  }

  private peek(): string {
    return this.text[this.position] ?? '';
  }

  /** Step over `char`, which the caller has already seen is next (after spaces). */
  private step(): void {
    this.skipSpaces();
    this.position++;
  }

  atEnd(): boolean {
    this.skipSpaces();
    return this.position >= this.text.length;
  }

  /** Whether a `"` at `index` can close a string in this context. */
  private closesString(index: number, context: StringContext): boolean {
    let next = index + 1;
    while (next < this.text.length && (this.text[next] === ' ' || this.text[next] === '\t')) next++;
    const after = this.text[next];
    if (after === undefined) return context === 'value';
    if (context === 'key') return after === '=';
    if (context === 'data') return after === ',' || after === '>';
    return after === ',' || after === ')' || after === '}' || after === ']';
  }

  readString(context: StringContext): string {
    this.skipSpaces();
    // Values and data come here only on a `"`; a dictionary key may be anything.
    if (this.peek() !== '"') this.fail('a quoted key');
    const start = this.position + 1;
    let index = start;
    for (;;) {
      index = this.text.indexOf('"', index);
      if (index < 0) break;
      if (this.closesString(index, context)) {
        this.position = index + 1;
        return this.text.slice(start, index);
      }
      index++;
    }
    const firstQuote = this.text.indexOf('"', start);
    if (firstQuote < 0) {
      this.position = this.text.length;
      this.fail('a closing `"`', true);
    }
    // There is a quote, but what follows it cannot follow a string here: report that.
    this.position = firstQuote + 1;
    this.skipSpaces();
    this.fail(CLOSERS[context], context !== 'key');
  }

  readValue(): PropertyValue {
    if (--this.budget.left < 0) throw new ValueBudgetExceeded(`more than ${MAX_IMPORTED_VALUES} values`);
    this.skipSpaces();
    const char = this.peek();
    switch (char) {
      case '"':
        return this.readString('value');
      case '{':
        return this.readDictionary();
      case '(':
        return this.readList(')');
      case '[':
        return this.readList(']');
      case '<':
        return this.readData();
      default:
        return this.readScalar();
    }
  }

  /** Match `pattern` (sticky) at the current position. */
  private matchHere(pattern: RegExp): string | null {
    pattern.lastIndex = this.position;
    const match = pattern.exec(this.text);
    return match ? match[0] : null;
  }

  private readScalar(): PropertyValue {
    const token = this.matchHere(SCALAR);
    if (token === null) this.fail('a value (number, Yes/No, "string", <data>, (array), {dictionary})');
    this.position += token.length;
    if (token === 'Yes') return true;
    if (token === 'No') return false;
    const negative = token.startsWith('-');
    const magnitude = BigInt(negative ? token.slice(1) : token);
    return integerValue(negative ? -magnitude : magnitude);
  }

  /** Enter one more level of (), [] or {}; the caller leaves it when the container closes. */
  private enter(): void {
    if (++this.depth > MAX_NESTING) this.fail(`at most ${MAX_NESTING} nested levels of (), [] and {}`);
  }

  private readList(close: string): PropertyValue[] {
    this.enter();
    this.step();
    const items: PropertyValue[] = [];
    this.skipSpaces();
    if (this.peek() === close) {
      this.position++;
      this.depth--;
      return items;
    }
    for (;;) {
      items.push(this.readValue());
      this.skipSpaces();
      if (this.peek() === ',') {
        this.position++;
        continue;
      }
      if (this.peek() === close) {
        this.position++;
        this.depth--;
        return items;
      }
      this.fail(`\`,\` or \`${close}\``);
    }
  }

  private readDictionary(): Record<string, PropertyValue> {
    this.enter();
    this.step();
    const entries: Record<string, PropertyValue> = {};
    this.skipSpaces();
    if (this.peek() === '}') {
      this.position++;
      this.depth--;
      return entries;
    }
    for (;;) {
      const key = this.readString('key');
      this.step(); // the `=` that closesString saw after the key
      setOwn(entries, key, this.readValue());
      this.skipSpaces();
      if (this.peek() === ',') {
        this.position++;
        continue;
      }
      if (this.peek() === '}') {
        this.position++;
        this.depth--;
        return entries;
      }
      this.fail('`,` or `}`');
    }
  }

  private readData(): PropertyValue {
    if (this.text.startsWith('<unknown object>', this.position)) {
      // ioreg's placeholder for a CF type it cannot print: the value exists, its content is not in the dump.
      this.position += '<unknown object>'.length;
      return null;
    }
    this.step();
    this.skipSpaces();
    if (this.peek() === '"') {
      // C strings: ioreg drops the NUL terminators when it prints them; we put one back after each
      // (the device-tree convention that this form comes from). Zero padding beyond that is not recoverable.
      const parts: Buffer[] = [];
      for (;;) {
        parts.push(Buffer.from(this.readString('data'), 'latin1'), Buffer.alloc(1));
        this.skipSpaces();
        // closesString accepted the quote only before `,` or `>`.
        if (this.text[this.position++] === '>') return { $data: Buffer.concat(parts).toString('base64') };
      }
    }
    const hex = this.matchHere(HEX_DIGITS) as string; // matches the empty string at least
    this.position += hex.length;
    if (this.peek() !== '>') this.fail('hex digits or `>`');
    if (hex.length % 2 !== 0) {
      this.position -= 1;
      this.fail('an even number of hex digits in <data>');
    }
    this.position++;
    return { $data: Buffer.from(hex, 'hex').toString('base64') };
  }
}

/** One property line, `"key" = value`, with its leading tree bars already removed. */
export function parsePropertyText(text: string, budget?: ValueBudget): { key: string; value: PropertyValue } {
  const reader = new ValueReader(text, budget);
  const key = reader.readString('key');
  reader.atEnd(); // skips to the `=` that closesString saw after the key
  reader.position++;
  const value = reader.readValue();
  if (!reader.atEnd()) throw new ValueSyntaxError(reader.position, 'the end of the line after the value', false, false);
  return { key, value };
}

/** Parse one ioreg value on its own (tests, and callers holding a single value). */
export function parseIoregValue(text: string, budget?: ValueBudget): PropertyValue {
  const reader = new ValueReader(text, budget);
  try {
    const value = reader.readValue();
    if (!reader.atEnd()) throw new ValueSyntaxError(reader.position, 'the end of the value', false, false);
    return value;
  } catch (error) {
    if (error instanceof ValueSyntaxError) {
      throw new IokitSnapError('EINVAL', `not an ioreg value: ${error.message}: ${JSON.stringify(text.slice(0, 80))}`);
    }
    if (error instanceof ValueBudgetExceeded) throw new IokitSnapError('EINVAL', `not an ioreg value: it holds ${error.message}, more than any ioreg dump`);
    /* c8 ignore next 2 -- only ValueSyntaxError is thrown above; anything else is a bug worth seeing as is */
    throw error;
  }
}
