/**
 * The pclntab reader (src/runtimes/gopclntab.ts) on tables built here byte by byte in the
 * layouts of runtime/symtab.go and runtime/runtime2.go for Go 1.18–1.19 (magic
 * 0xfffffff0: a 40-byte _func, 20-byte inlinedCall { parent i16, funcID u8, pad u8,
 * file i32, line i32, func_ i32, parentPc i32 }) and Go 1.20+ (0xfffffff1: a 44-byte
 * _func with startLine, 16-byte inlinedCall { funcID u8, pad ×3, nameOff i32, parentPc
 * i32, startLine i32 }), the pc-value tables in runtime.pcvalue's encoding (zig-zag value
 * delta, then pc delta / quantum, ended by a 0). The installed Go (1.19) builds only the
 * first format, which test/goroutines.test.ts reads in real programs; these cover the
 * second and the tables a damaged or truncated file gives.
 */
import t from 'tap';
import { GoPclntab } from '../src/runtimes/gopclntab';

const TEXT = 0x10000;

interface Func {
  name: string;
  entry: number;
  /** pcdata offsets into pctab (index 2: the inline-tree index table). */
  pcdata?: number[];
  /** funcdata offsets from gofunc (index 3: the inline tree). */
  funcdata?: number[];
  /** An npcdata the _func claims (more than it has). */
  npcdata?: number;
  /** Where the _func is, from pclntable, when not where the builder puts it. */
  funcOffset?: number;
}

/**
 * A pclntab at address 0: header, functab and _funcs, the inline tree (gofunc), the
 * function names, then pctab last (so a table may run to the end of the file), or the
 * names last (`namesLast`: a name may run to the end).
 */
function pclntab(version: '1.18' | '1.20', funcs: Func[], end: number, pctab: number[], inline: { name: string; parentPc: number }[], namesLast = false) {
  const fixed = version === '1.18' ? 40 : 44;
  const names: number[] = [];
  const nameOff = new Map<string, number>();
  const nameOf = (name: string): number => {
    if (!nameOff.has(name)) {
      nameOff.set(name, names.length);
      names.push(...Buffer.from(name));
      if (!(namesLast && name.startsWith('tail:'))) names.push(0);
    }
    return nameOff.get(name)!;
  };
  // The tail name last of all, with no NUL after it.
  for (const f of funcs) if (!f.name.startsWith('tail:')) nameOf(f.name);
  for (const i of inline) nameOf(i.name);
  for (const f of funcs) if (f.name.startsWith('tail:')) nameOf(f.name);
  const functabSize = (funcs.length + 1) * 8;
  const funcRecords: number[] = [];
  const funcOffsets: number[] = [];
  for (const f of funcs) {
    funcOffsets.push(f.funcOffset ?? functabSize + funcRecords.length);
    const pcdata = f.pcdata ?? [];
    const funcdata = f.funcdata ?? [];
    const head = Buffer.alloc(fixed);
    head.writeUInt32LE(f.entry, 0);
    head.writeInt32LE(nameOf(f.name), 4);
    head.writeUInt32LE(f.npcdata ?? pcdata.length, 28);
    head[fixed - 1] = funcdata.length;
    const tables = Buffer.alloc((pcdata.length + funcdata.length) * 4);
    [...pcdata, ...funcdata].forEach((v, i) => tables.writeUInt32LE(v >>> 0, i * 4));
    funcRecords.push(...head, ...tables);
  }
  const tree = Buffer.alloc(inline.length * (version === '1.18' ? 20 : 16));
  inline.forEach((call, i) => {
    if (version === '1.18') {
      tree.writeInt32LE(nameOf(call.name), i * 20 + 12);
      tree.writeInt32LE(call.parentPc, i * 20 + 16);
    } else {
      tree.writeInt32LE(nameOf(call.name), i * 16 + 4);
      tree.writeInt32LE(call.parentPc, i * 16 + 8);
    }
  });
  const pclnOffset = 72;
  const gofunc = pclnOffset + functabSize + funcRecords.length;
  const namesAt = namesLast ? gofunc + tree.length + pctab.length : gofunc + tree.length;
  const pctabAt = namesLast ? gofunc + tree.length : gofunc + tree.length + names.length;
  const header = Buffer.alloc(72);
  header.writeUInt32LE(version === '1.18' ? 0xfffffff0 : 0xfffffff1, 0);
  header[6] = 1; // quantum (x86-64)
  header[7] = 8;
  header.writeBigUInt64LE(BigInt(funcs.length), 8);
  header.writeBigUInt64LE(BigInt(TEXT), 24);
  header.writeBigUInt64LE(BigInt(namesAt), 32);
  header.writeBigUInt64LE(BigInt(pctabAt), 56);
  header.writeBigUInt64LE(BigInt(pclnOffset), 64);
  const functab = Buffer.alloc(functabSize);
  funcs.forEach((f, i) => {
    functab.writeUInt32LE(f.entry, i * 8);
    functab.writeUInt32LE(funcOffsets[i], i * 8 + 4);
  });
  functab.writeUInt32LE(end, funcs.length * 8);
  const parts = namesLast ? [header, functab, Buffer.from(funcRecords), tree, Buffer.from(pctab), Buffer.from(names)] : [header, functab, Buffer.from(funcRecords), tree, Buffer.from(names), Buffer.from(pctab)];
  const memory = Buffer.concat(parts);
  const read = async (addr: number, length: number): Promise<Buffer> => memory.subarray(addr, addr + length);
  return { memory, read, gofunc };
}

// pctab starts with a 0 byte (as the linker writes it: offset 0 means "no table"). Then the
// inline-tree index of main.outer: -1 (+1 → 0) for [0, 0x10): main.inner inlined there;
// then −1 for [0x10, 0x20); then the end. main.inner's call site (parentPc) is 0x18.
const INDEX = [0, 2, 0x10, 1, 0x10, 0];

for (const version of ['1.18', '1.20'] as const) {
  t.test(`Go ${version} layout: inlined frames, and what a damaged table gives`, async (t) => {
    const funcs: Func[] = [
      { name: 'main.outer', entry: 0, pcdata: [0, 0, 1], funcdata: [0xffffffff, 0xffffffff, 0xffffffff, 0] },
      { name: 'main.claims', entry: 0x100, npcdata: 100 }, // an npcdata past any real one: no tables read
      { name: 'main.lost', entry: 0x200, funcOffset: 1 << 20 }, // its _func past the end of the file
    ];
    const { read, gofunc } = pclntab(version, funcs, 0x300, INDEX, [{ name: 'main.inner', parentPc: 0x18 }]);
    const table = (await GoPclntab.open(read, 0, gofunc, 0))!;
    t.equal(table.version, version);
    t.same(await table.frames(TEXT + 5, true), [
      { name: 'main.inner', offset: 5, inlined: true },
      { name: 'main.outer', offset: 5, inlined: false },
    ], 'the call inlined at the pc, then the function it is in');
    t.equal((await table.frames(TEXT + 6, true))[0].name, 'main.inner', 'the inlined name again (from the names read)');
    t.same(await table.frames(TEXT + 0x18, false), [{ name: 'main.outer', offset: 0x18, inlined: false }], 'where the index is -1: the physical function only');
    t.same(await table.frames(TEXT + 0x50, false), [{ name: 'main.outer', offset: 0x50, inlined: false }], 'past the end of the index table: -1');
    t.same(await table.frames(TEXT + 0x104, true), [{ name: 'main.claims', offset: 4, inlined: false }]);
    t.same(await table.frames(TEXT + 0x204, true), [], 'a _func past the end of the file names nothing');
    t.same(await table.frames(TEXT + 0x204, true), [], 'and is remembered as nothing');
    t.same(await table.frames(TEXT + 0x300, true), [], 'past the last function');
    t.same(await table.frames(TEXT - 1, true), [], 'before the first');
    t.notOk(table.covers(TEXT + 0x300));

    // gofunc not known (0): no inline tree, the physical function only.
    t.same(await (await GoPclntab.open(read, 0, 0, 0))!.frames(TEXT + 5, true), [{ name: 'main.outer', offset: 5, inlined: false }], 'gofunc unknown: no inlined frames');
    // textStart 0 in the header (an unrelocated PIE's): the caller's .text address stands in.
    const { memory: moved } = pclntab(version, funcs, 0x300, INDEX, []);
    moved.writeBigUInt64LE(0n, 24);
    const fallback = (await GoPclntab.open(async (addr, length) => moved.subarray(addr, addr + length), 0, 0, 0x7000))!;
    t.same(await fallback.frames(0x7000 + 0x104, true), [{ name: 'main.claims', offset: 4, inlined: false }], 'textStart from the caller');

    // The inline tree where its entry runs past the end of the file: the walk stops there.
    const { memory } = pclntab(version, funcs, 0x300, INDEX, [{ name: 'main.inner', parentPc: 0x18 }]);
    const cut = (await GoPclntab.open(read, 0, memory.length - 4, 0))!;
    t.same(await cut.frames(TEXT + 5, true), [{ name: 'main.outer', offset: 5, inlined: false }], 'a truncated inline tree: the physical function');
  });
}

t.test('pc-value tables and names that run to the end of the file', async (t) => {
  const inlined = { pcdata: [0, 0, 1], funcdata: [0, 0, 0, 0] };
  // A name at the very end, without its NUL: what is there is the name.
  const tail = pclntab('1.20', [{ name: 'tail:main.cut', entry: 0 }], 0x100, [], [], true);
  t.same(await (await GoPclntab.open(tail.read, 0, 0, 0))!.frames(TEXT + 1, false), [{ name: 'tail:main.cut', offset: 1, inlined: false }]);
  // A long name: read 256 bytes at a time.
  const long = `main.${'x'.repeat(600)}`;
  const longTable = pclntab('1.20', [{ name: long, entry: 0 }], 0x100, [], []);
  t.equal((await (await GoPclntab.open(longTable.read, 0, 0, 0))!.frames(TEXT + 1, false))[0].name, long);

  // A table that is not ended before the file is: a RangeError the caller turns into an unnamed frame.
  const open = pclntab('1.20', [{ name: 'main.f', entry: 0, ...inlined }], 0x100, [0, 2, 0x01, 2, 0x01], [{ name: 'main.g', parentPc: 0 }]);
  await t.rejects((await GoPclntab.open(open.read, 0, open.gofunc, 0))!.frames(TEXT + 0x50, false), RangeError, 'past the end of the file');
  // A varint of more than 5 bytes.
  const wide = pclntab('1.20', [{ name: 'main.f', entry: 0, ...inlined }], 0x100, [0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0], [{ name: 'main.g', parentPc: 0 }]);
  await t.rejects((await GoPclntab.open(wide.read, 0, wide.gofunc, 0))!.frames(TEXT + 0x50, false), { message: /varint too long/ });
  // A table whose pcs never advance (pc delta 0, 100,000 times; longer than one 512-byte read): the guard ends it.
  const stuck = pclntab('1.20', [{ name: 'main.f', entry: 0, ...inlined }], 0x100, [0, ...new Array<number>(100_001).fill(0).flatMap(() => [2, 0]), 0], [{ name: 'main.g', parentPc: 0 }]);
  t.same(await (await GoPclntab.open(stuck.read, 0, stuck.gofunc, 0))!.frames(TEXT + 0x50, false), [{ name: 'main.f', offset: 0x50, inlined: false }], 'no index within the guard: the physical function');
});
