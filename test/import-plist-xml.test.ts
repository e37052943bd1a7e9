// The XML property list reader under importIoreg: every element of Apple's
// PropertyList-1.0 DTD, what is not a property list, and the bounds (depth, "__proto__").
// The documents are written here by hand in the layout CFPropertyList writes.
import t from 'tap';
import { importIoreg } from '../src/import';
import { parseIoregPlist } from '../src/import/ioreg-plist';
import { parsePlistXml, PlistSyntaxError } from '../src/import/plist-xml';
import { MAX_NESTING } from '../src/input-limits';

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n';
const doc = (body: string): string => `${HEAD}<plist version="1.0">\n${body}\n</plist>\n`;

t.test('every element type, entities, CDATA, empty forms', async (t) => {
  const value = parsePlistXml(
    doc(`<dict>
  <key>s</key><string>a &amp; b &lt;c&gt; &#x41;</string>
  <key>cdata</key><string><![CDATA[<raw>]]></string>
  <key>empty</key><string/>
  <key>i</key><integer> 42 </integer>
  <key>neg</key><integer>-7</integer>
  <key>plus</key><integer>+3</integer>
  <key>hex</key><integer>0x1F</integer>
  <key>huge</key><integer>-18446744073709551615</integer>
  <key>r</key><real>2.5e3</real>
  <key>nan</key><real>nan</real>
  <key>t</key><true/>
  <key>f</key><false></false>
  <key>d</key><date>2026-11-02T09:00:00Z</date>
  <key>data</key><data>
    AAEC
    /w==
  </data>
  <key>a</key><array><integer>1</integer><dict/><array/></array>
</dict>`),
  );
  t.strictSame(value, {
    s: 'a & b <c> A',
    cdata: '<raw>',
    empty: '',
    i: 42,
    neg: -7,
    plus: 3,
    hex: 31,
    huge: '-18446744073709551615',
    r: 2500,
    nan: 'nan',
    t: true,
    f: false,
    d: '2026-11-02T09:00:00.000Z',
    data: { $data: 'AAEC/w==' },
    a: [1, {}, []],
  });
  t.equal(parsePlistXml('<array><string>bare root</string></array>')?.toString(), 'bare root', 'a root value without <plist> is read');
});

t.test('"__proto__" is a key like any other: an own property, the prototype untouched', async (t) => {
  const value = parsePlistXml(doc('<dict><key>__proto__</key><dict><key>polluted</key><true/></dict><key>x</key><integer>1</integer></dict>')) as Record<
    string,
    unknown
  >;
  t.equal(Object.getPrototypeOf(value), Object.prototype);
  t.ok(Object.prototype.hasOwnProperty.call(value, '__proto__'));
  t.strictSame(Object.keys(value), ['__proto__', 'x']);
  t.equal((value as { polluted?: unknown }).polluted, undefined);
  const snap = importIoreg(
    doc(`<dict><key>IORegistryEntryName</key><string>g</string><key>IOObjectClass</key><string>IntelAccelerator</string>
<key>__proto__</key><dict><key>IOClass</key><string>evil</string></dict></dict>`),
    { includeProperties: true },
  );
  const properties = snap.accelerators[0].properties as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(properties), Object.prototype, 'the accelerator properties keep their prototype');
  t.strictSame(Object.getOwnPropertyDescriptor(properties, '__proto__')?.value, { IOClass: 'evil' });
});

function caught(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

t.test('not a property list: a PlistSyntaxError with line and column, EINVAL from importIoreg', async (t) => {
  const cases: [string, RegExp][] = [
    ['<dict><integer>1</integer></dict>', /a value in a <dict> without a <key>/],
    ['<dict><key>a</key><key>b</key></dict>', /<key>a<\/key> has no value before the next <key>/],
    ['<dict><key>a</key></dict>', /<key>a<\/key> has no value before <\/dict>/],
    ['<array><key>a</key></array>', /<key> outside a <dict>/],
    ['<key>a</key>', /<key> outside a <dict>/],
    ['<array>text<string/></array>', /text "text" outside a value element/],
    ['<array><![CDATA[x]]></array>', /CDATA outside a value element/],
    ['<string><b/></string>', /<b> inside <string>, which holds only text/],
    ['<integer>12a</integer>', /<integer> holds "12a", not an integer/],
    ['<real>1.2.3</real>', /<real> holds "1.2.3", not a number/],
    ['<true>yes</true>', /<true> must be empty/],
    ['<plist></plist>', /<plist> holds no value/],
    ['<plist><true/><false/></plist>', /a second value in <plist>/],
    ['<plist><plist><true/></plist></plist>', /<plist> is not a property list element/],
    ['<set/>', /<set> is not a property list element/],
    ['<dict>', /not well-formed XML/],
    ['<?xml version="1.0"?>', /not well-formed XML \(document must contain a root element/],
    ['<true/><false/>', /not well-formed XML/],
  ];
  for (const [body, reason] of cases) {
    t.throws(() => parsePlistXml(body), reason, body);
    t.ok(caught(() => parsePlistXml(body)) instanceof PlistSyntaxError, 'a PlistSyntaxError');
    t.throws(() => importIoreg(`<?xml version="1.0"?>\n${body}`), { code: 'EINVAL', message: /ioreg -a input: line \d+, column \d+: not a well-formed property list/ }, body);
  }
  t.throws(() => importIoreg(doc('<array><data>AAEC</data></array>')), { code: 'EINVAL', message: /entry 1 is not a dictionary/ });
  t.throws(() => importIoreg(doc('<array><dict><key>IORegistryEntryName</key><string>a</string></dict><true/></array>')), { code: 'EINVAL', message: /entry 2 is not a dictionary/ });
  const error = caught(() => parsePlistXml('<plist>\n  <dict>\n    <integer>1</integer>\n  </dict>\n</plist>')) as PlistSyntaxError;
  t.equal(error.line, 3, 'the line of the offending element');
});

/** `depth` registry entries, each the only child of the one above it (what `ioreg -a -l` nests). */
function nestedEntries(depth: number): string {
  const open = '<dict><key>IORegistryEntryName</key><string>n</string><key>IOObjectClass</key><string>IOService</string><key>IORegistryEntryChildren</key><array>';
  return doc(`${open.repeat(depth - 1)}<dict><key>IORegistryEntryName</key><string>leaf</string><key>IOObjectClass</key><string>IntelAccelerator</string></dict>${'</array></dict>'.repeat(depth - 1)}`);
}

t.test('nesting: a 1,000-entry-deep tree reads in full; past the bound, EINVAL, never a stack overflow', async (t) => {
  const dump = parseIoregPlist(nestedEntries(1000));
  let depth = 0;
  for (let node = dump.roots[0]; node; node = node.children[0]) depth++;
  t.equal(depth, 1000);
  t.equal(importIoreg(nestedEntries(1000)).accelerators.length, 1, 'the leaf at depth 1,000 is found');
  t.throws(() => importIoreg(nestedEntries(MAX_NESTING)), { code: 'EINVAL', message: new RegExp(`nested deeper than ${MAX_NESTING} levels`) });
  const deepValue = doc(`${'<array>'.repeat(100_000)}${'</array>'.repeat(100_000)}`);
  t.throws(() => parsePlistXml(deepValue), /nested deeper than/);
});
