// The value grammar of ioreg text (ioreg.c cfshow): each form, and the raw strings ioreg
// prints without escapes. Values are written here in the exact shapes ioreg prints.
import t from 'tap';
import { integerValue, parseIoregValue, parsePropertyText } from '../src/import/ioreg-value';

const data = (hex: string): { $data: string } => ({ $data: Buffer.from(hex, 'hex').toString('base64') });
const text = (s: string): { $data: string } => ({ $data: Buffer.from(s, 'latin1').toString('base64') });

t.test('scalars', async (t) => {
  t.equal(parseIoregValue('Yes'), true);
  t.equal(parseIoregValue('No'), false);
  t.equal(parseIoregValue('0'), 0);
  t.equal(parseIoregValue('4597121024'), 4597121024);
  t.equal(parseIoregValue('0x2710'), 10000, '`ioreg -x` prints numbers in hex');
  t.equal(parseIoregValue('-5'), -5, 'not printed by ioreg, read anyway');
  t.equal(parseIoregValue('18446744073709551615'), '18446744073709551615', 'unsigned 64-bit stays exact');
  t.equal(parseIoregValue('""'), '');
  t.equal(parseIoregValue('"IOCommand is not serializable"'), 'IOCommand is not serializable');
  t.equal(parseIoregValue('<unknown object>'), null, 'a CF type ioreg cannot print');
});

t.test('integerValue: a number when a double holds it exactly (|v| ≤ 2^53), else a decimal string', async (t) => {
  t.equal(integerValue(2n ** 53n), 9007199254740992);
  t.equal(integerValue(-(2n ** 53n)), -9007199254740992);
  t.equal(integerValue(2n ** 53n + 1n), '9007199254740993');
  t.equal(integerValue(-(2n ** 53n) - 1n), '-9007199254740993');
});

t.test('strings are raw: backslashes kept, inner quotes where the grammar allows', async (t) => {
  t.equal(parseIoregValue('"C:\\path\\n"'), 'C:\\path\\n', 'ioreg prints no escapes, so none are undone');
  t.equal(parseIoregValue('"say "hi" twice"'), 'say "hi" twice');
  t.strictSame(parseIoregValue('{"k"="a"b",  "j" = 1 }'), { k: 'a"b', j: 1 }, 'spaces between tokens are allowed');
  t.strictSame(parseIoregValue('("x=1","y")'), ['x=1', 'y']);
  t.strictSame(parseIoregValue('{"a=b"=1}'), { 'a=b': 1 }, 'a key holding `=`');
});

t.test('data: hex, C strings, several strings, empty', async (t) => {
  t.strictSame(parseIoregValue('<6b100000>'), data('6b100000'));
  t.strictSame(parseIoregValue('<>'), data(''));
  t.strictSame(parseIoregValue('<"Apple M1">'), text('Apple M1\0'), 'the NUL ioreg did not print is put back');
  t.strictSame(parseIoregValue('<"gpu,t8103","AppleARM">'), text('gpu,t8103\0AppleARM\0'));
});

t.test('containers: arrays, sets, dictionaries, nested, empty', async (t) => {
  t.strictSame(parseIoregValue('()'), []);
  t.strictSame(parseIoregValue('[]'), []);
  t.strictSame(parseIoregValue('{}'), {});
  t.strictSame(parseIoregValue('[1,"two",Yes]'), [1, 'two', true], 'a set prints as [..]');
  t.strictSame(parseIoregValue('{"Stamps"=({"idx"=25}),"BusyWorkQueues"=({"submit"=(104077551360),"state"="Idle"})}'), {
    Stamps: [{ idx: 25 }],
    BusyWorkQueues: [{ submit: [104077551360], state: 'Idle' }],
  });
});

t.test('property lines', async (t) => {
  t.strictSame(parsePropertyText('"IOProbeScore" = 10000'), { key: 'IOProbeScore', value: 10000 });
  t.strictSame(parsePropertyText('"ATY,intrev" = 21'), { key: 'ATY,intrev', value: 21 });
  t.strictSame(parsePropertyText('"SurfaceList" = ()   '), { key: 'SurfaceList', value: [] }, 'trailing spaces');
});

t.test('errors name what was expected', async (t) => {
  t.throws(() => parseIoregValue('maybe'), { code: 'EINVAL', message: /not an ioreg value: expected a value .* at column 1: "maybe"/ });
  t.throws(() => parseIoregValue('1 2'), { code: 'EINVAL', message: /expected the end of the value at column 3/ });
  t.throws(() => parseIoregValue('"open'), { code: 'EINVAL', message: /expected a closing `"`/ });
  t.throws(() => parseIoregValue('{"a"=1'), { code: 'EINVAL', message: /expected `,` or `}` at column 7/ });
  t.throws(() => parseIoregValue('(1,'), { code: 'EINVAL', message: /expected a value/ });
});
