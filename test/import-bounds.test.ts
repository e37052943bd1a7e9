// What no ioreg text can do to the importer: nest values until the stack overflows, or
// name a property "__proto__" and so replace an object's prototype. The node line and
// block layout are those of the real captures in test/fixtures/ioreg.
import t from 'tap';
import { importIoreg } from '../src/import';
import { parseIoregValue } from '../src/import/ioreg-value';
import { MAX_NESTING } from '../src/input-limits';

const NODE = '+-o IntelAccelerator  <class IntelAccelerator, id 0x10000048d, registered, matched, active, busy 0 (12 ms), retain 59>';
const block = (...lines: string[]): string => [NODE, '  {', ...lines.map((l) => `    ${l}`), '  }', ''].join('\n');

t.test('values nested past the bound: EINVAL naming the line, never a RangeError', async (t) => {
  const nest = (depth: number, open = '(', close = ')'): string => open.repeat(depth) + close.repeat(depth);
  t.strictSame(JSON.stringify(parseIoregValue(nest(3))), '[[[]]]');
  t.doesNotThrow(() => parseIoregValue(nest(MAX_NESTING)), `${MAX_NESTING} levels read`);
  for (const depth of [MAX_NESTING + 1, 5000, 200_000]) {
    t.throws(() => parseIoregValue(nest(depth)), { code: 'EINVAL', message: new RegExp(`at most ${MAX_NESTING} nested levels`) }, `${depth} levels`);
  }
  t.throws(() => importIoreg(block(`"deep" = ${'{"a"='.repeat(5000)}1${'}'.repeat(5000)}`)), {
    code: 'EINVAL',
    message: new RegExp(`ioreg input, line 3: expected at most ${MAX_NESTING} nested levels`),
  });
  t.throws(() => importIoreg(block(`"deep" = ${nest(5000, '[', ']')}`)), { code: 'EINVAL', message: /line 3/ });
});

t.test('"__proto__" is stored as a property, in a block and inside a dictionary value', async (t) => {
  const snap = importIoreg(block('"__proto__" = {"IOClass"="evil","__proto__"=1}', '"IOMatchCategory" = "IOAccelerator"'), { includeProperties: true });
  const properties = snap.accelerators[0].properties as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(properties), Object.prototype);
  t.strictSame(Object.keys(properties), ['__proto__', 'IOMatchCategory']);
  const inner = Object.getOwnPropertyDescriptor(properties, '__proto__')?.value as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(inner), Object.prototype, 'the dictionary value keeps its prototype too');
  t.strictSame(Object.keys(inner), ['IOClass', '__proto__']);
  t.equal(JSON.parse(JSON.stringify(properties)).__proto__.IOClass, 'evil', 'it survives JSON, as a key');
  t.equal(({} as Record<string, unknown>).IOClass, undefined, 'Object.prototype untouched');
});
