/**
 * The file readers behind goroutines (src/runtimes/): DWARF units built here byte by byte
 * in the layouts the DWARF 4 and 5 standards give (every attribute form, 32- and 64-bit
 * units, a unit of another language), ELF files that are not what they claim, a file
 * system that does not answer, and pclntab headers of formats not read.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deflateSync } from 'node:zlib';
import { readDwarfFacts } from '../src/runtimes/dwarf';
import { ElfFile, ReadBudget } from '../src/runtimes/elf-file';
import { GoPclntab } from '../src/runtimes/gopclntab';
import { forgetGoBinaries, goBinary } from '../src/runtimes/go-binary';

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
};
const u16 = (n: number) => [n & 0xff, n >> 8];
const u32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24];
const u64 = (n: number) => [...u32(n), ...u32(0)];
const str = (s: string) => [...Buffer.from(s), 0];

/** One abbreviation: code, tag, children, [attribute, form, implicit?]… */
function abbrev(code: number, tag: number, children: boolean, attrs: [number, number, number?][]): number[] {
  const out = [...uleb(code), ...uleb(tag), children ? 1 : 0];
  for (const [name, form, implicit] of attrs) {
    out.push(...uleb(name), ...uleb(form));
    if (form === 0x21) out.push(...uleb(implicit ?? 0)); // sleb of a small positive value
  }
  return [...out, 0, 0];
}

/** A unit: header (v4 or v5, 32- or 64-bit) + DIEs. */
function unit(version: number, dies: number[], wide = false, abbrevOffset = 0): number[] {
  const header = version >= 5 ? [...u16(version), 0x01, 8, ...(wide ? u64(abbrevOffset) : u32(abbrevOffset))] : [...u16(version), ...(wide ? u64(abbrevOffset) : u32(abbrevOffset)), 8];
  const body = [...header, ...dies];
  return wide ? [...u32(0xffffffff), ...u64(body.length), ...body] : [...u32(body.length), ...body];
}

t.test('DWARF: structures and constants through every attribute form', async (t) => {
  const strings = Buffer.from('\0runtime.g\0count\0');
  const abbrevs = Buffer.from([
    ...abbrev(1, 0x11, true, [[0x03, 0x08], [0x13, 0x0b]]), // compile unit: name, language
    // A struct with every skipped form before its name and size.
    ...abbrev(2, 0x13, true, [
      [0x01, 0x01], [0x02, 0x03], [0x04, 0x04], [0x05, 0x05], [0x06, 0x06], [0x07, 0x07], [0x08, 0x09], [0x09, 0x0a], [0x0a, 0x0c],
      [0x0c, 0x0d], [0x0d, 0x0f], [0x0e, 0x17], [0x0f, 0x18], [0x10, 0x19], [0x11, 0x1a], [0x12, 0x1b], [0x14, 0x1c], [0x15, 0x1e],
      [0x16, 0x1f], [0x17, 0x20], [0x18, 0x22], [0x19, 0x23], [0x1a, 0x24], [0x1b, 0x25], [0x1d, 0x26], [0x1e, 0x27], [0x1f, 0x28],
      [0x20, 0x29], [0x21, 0x2a], [0x22, 0x2b], [0x23, 0x2c], [0x24, 0x1d], [0x25, 0x1f01], [0x26, 0x1f20], [0x27, 0x16],
      [0x03, 0x0e], [0x0b, 0x0b],
    ]),
    ...abbrev(3, 0x0d, false, [[0x03, 0x08], [0x38, 0x0f], [0x49, 0x13]]), // member: name, location (udata), type (ref4)
    ...abbrev(4, 0x0d, false, [[0x03, 0x0e], [0x38, 0x0b], [0x49, 0x10]]), // member: name (strp), location, type (ref_addr)
    ...abbrev(5, 0x16, false, [[0x03, 0x08], [0x49, 0x11]]), // typedef: name, type (ref1)
    ...abbrev(6, 0x24, false, [[0x03, 0x08], [0x0b, 0x21, 8]]), // base type: size as implicit_const
    ...abbrev(7, 0x27, false, [[0x03, 0x08], [0x1c, 0x0d]]), // constant: sdata
    ...abbrev(9, 0x0d, false, [[0x03, 0x08], [0x38, 0x0b], [0x49, 0x12]]), // member with a ref2 type
    ...abbrev(10, 0x0d, false, [[0x03, 0x08], [0x38, 0x0b], [0x49, 0x14]]), // ref8
    ...abbrev(11, 0x0d, false, [[0x03, 0x08], [0x38, 0x0b], [0x49, 0x15]]), // ref_udata
    0,
  ]);
  // Unit A (v4): the struct, three members, the typedef and base type they point at, constants.
  const structAttrs = [
    ...u64(0x401000), // addr
    ...u16(1), 0xaa, // block2
    ...u32(2), 1, 2, // block4
    ...u16(3), // data2
    ...u32(4), // data4
    ...u64(5), // data8
    ...uleb(2), 1, 2, // block
    1, 3, // block1
    1, // flag
    0x7f, // sdata (-1)
    ...uleb(300), // udata
    ...u32(0), // sec_offset
    ...uleb(1), 0x90, // exprloc
    // flag_present: no bytes
    ...uleb(1), // strx
    ...uleb(2), // addrx
    ...u32(0), // ref_sup4
    ...new Array(16).fill(0), // data16
    ...u32(0), // line_strp
    ...new Array(8).fill(0), // ref_sig8
    ...uleb(3), // loclistx
    ...uleb(4), // rnglistx
    ...new Array(8).fill(0), // ref_sup8
    1, // strx1
    1, 2, // strx2
    1, 2, 3, // strx3
    1, 2, 3, 4, // strx4
    1, // addrx1
    1, 2, // addrx2
    1, 2, 3, // addrx3
    1, 2, 3, 4, // addrx4
    ...u32(0), // strp_sup
    ...uleb(5), // GNU_addr_index
    ...u32(0), // GNU_ref_alt
    ...uleb(0x0b), 9, // indirect: data1
    ...u32(1), // strp: "runtime.g"
    48, // data1: byte_size
  ];
  // The DIEs, laid out with their references patched once the targets' offsets are known
  // (offsets count from the unit's start: a v4 header is 11 bytes).
  const dies: number[] = [];
  const patches: { at: number; size: number; target: string; absolute: boolean }[] = [];
  const marks = new Map<string, number>();
  const put = (...bytes: number[]) => dies.push(...bytes);
  const ref = (target: string, size: number, absolute = false) => {
    patches.push({ at: dies.length, size, target, absolute });
    put(...new Array(size).fill(0));
  };
  put(1, ...str('main'), 0x16);
  // The types first, so that every reference (ref1, ref_udata) fits one byte.
  marks.set('typedef', 11 + dies.length);
  put(5, ...str('runtime.int64'));
  ref('base', 1);
  marks.set('base', 11 + dies.length);
  put(6, ...str('int64'));
  put(7, ...str('runtime._Gwaiting'), 4);
  put(7, ...str('other.constant'), 1);
  put(2, ...structAttrs);
  put(3, ...str('goid'));
  put(...uleb(152));
  ref('typedef', 4);
  put(4, ...u32(11), 160); // its name by strp: 'count'
  ref('base', 4, true);
  put(9, ...str('status'), 144);
  ref('base', 2);
  put(10, ...str('wide'), 168);
  ref('base', 8);
  put(11, ...str('small'), 176);
  ref('base', 1); // ref_udata: one byte below 128
  put(0);
  put(0);
  for (const { at, size, target } of patches) {
    const value = marks.get(target)!; // the unit starts at 0: absolute and relative agree
    for (let i = 0; i < size; i++) dies[at + i] = i < 4 ? (value >> (8 * i)) & 0xff : 0;
  }
  // Unit B: C (language 0x0c), skipped whole; unit C: v5 and 64-bit, a constant only.
  const units = Buffer.from([
    ...unit(4, dies),
    ...unit(4, [1, ...str('libc'), 0x0c, 2, 0xff, 0xff]),
    ...unit(5, [1, ...str('x'), 0x16, 7, ...str('runtime._Gdead'), 6, 0, 0], true),
  ]);
  const facts = readDwarfFacts(units, abbrevs, strings, new Set(['runtime.g']), ['runtime._G']);
  const g = facts.structs.get('runtime.g');
  t.ok(g, 'the struct, named by strp after every other form');
  t.equal(g!.size, 48);
  t.match(g!.members.get('goid'), { offset: 152, size: 8, typeName: 'runtime.int64' }, 'a typedef to a base type whose size is an implicit constant');
  t.match(g!.members.get('count'), { offset: 160, size: 8 }, 'named through .debug_str, typed through ref_addr');
  t.match(g!.members.get('status'), { offset: 144, size: 8 });
  t.match(g!.members.get('wide'), { offset: 168, size: 8 });
  t.match(g!.members.get('small'), { offset: 176, size: 8 });
  t.same([...facts.constants], [['runtime._Gwaiting', 4], ['runtime._Gdead', 6]], 'constants by prefix, from v4 and 64-bit v5 units; not from the C unit');

  t.throws(() => readDwarfFacts(Buffer.from(unit(4, [1, ...str('x'), 0x16, 12])), abbrevs, null, new Set(), []), { code: 'ENOTSUP', message: /abbreviation 12 is not defined/ });
  const odd = Buffer.from([...abbrev(1, 0x11, true, [[0x03, 0x77]]), 0]);
  t.throws(() => readDwarfFacts(Buffer.from(unit(4, [1, 0])), odd, null, new Set(), []), { code: 'ENOTSUP', message: /form 0x77 is not known/ });
  t.throws(() => readDwarfFacts(Buffer.from(unit(4, [1, 0x61])), abbrevs, null, new Set(), []), { code: 'ENOTSUP', message: /malformed DWARF/ });
  t.same(readDwarfFacts(Buffer.from([...u32(0), ...new Array(8).fill(0)]), abbrevs, null, new Set(['runtime.g']), []).structs.size, 0, 'an empty unit ends the walk');
  t.same(readDwarfFacts(Buffer.from(unit(9, [1])), abbrevs, null, new Set(['runtime.g']), []).structs.size, 0, 'an unknown version ends the walk');
});

function elfFile(dir: string, name: string, bytes: Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** A 64-bit little-endian ELF file with the named sections (and a section-name table). */
function elf(sections: { name: string; type?: number; flags?: number; data: Buffer; addr?: number; size?: number }[], patch?: (head: Buffer) => void): Buffer {
  const names = Buffer.concat([Buffer.from('\0'), ...sections.map((s) => Buffer.from(`${s.name}\0`)), Buffer.from('.shstrtab\0')]);
  let offset = 64;
  const placed = sections.map((s) => {
    const at = offset;
    offset += s.data.length;
    return at;
  });
  const namesAt = offset;
  offset += names.length;
  const shoff = offset;
  const count = sections.length + 2;
  const head = Buffer.alloc(64);
  head.writeUInt32BE(0x7f454c46, 0);
  head[4] = 2;
  head[5] = 1;
  head.writeUInt16LE(2, 16);
  head.writeUInt16LE(62, 18);
  head.writeBigUInt64LE(BigInt(shoff), 40);
  head.writeUInt16LE(64, 58);
  head.writeUInt16LE(count, 60);
  head.writeUInt16LE(count - 1, 62);
  patch?.(head);
  const table = Buffer.alloc(count * 64);
  let nameAt = 1;
  sections.forEach((s, i) => {
    const at = (i + 1) * 64;
    table.writeUInt32LE(nameAt, at);
    nameAt += s.name.length + 1;
    table.writeUInt32LE(s.type ?? 1, at + 4);
    table.writeBigUInt64LE(BigInt(s.flags ?? 0), at + 8);
    table.writeBigUInt64LE(BigInt(s.addr ?? 0), at + 16);
    table.writeBigUInt64LE(BigInt(placed[i]), at + 24);
    table.writeBigUInt64LE(BigInt(s.size ?? s.data.length), at + 32);
  });
  const last = (count - 1) * 64;
  table.writeUInt32LE(nameAt, last);
  table.writeUInt32LE(3, last + 4);
  table.writeBigUInt64LE(BigInt(namesAt), last + 24);
  table.writeBigUInt64LE(BigInt(names.length), last + 32);
  return Buffer.concat([head, ...sections.map((s) => s.data), names, table]);
}

t.test('ELF files that are not what they claim', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-elf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const budget = () => new ReadBudget(performance.now() + 10000, 1 << 20);
  const payload = Buffer.from('hello, section');
  const chdr = Buffer.alloc(24);
  chdr.writeUInt32LE(1, 0);
  chdr.writeBigUInt64LE(BigInt(payload.length), 8);
  const zhead = Buffer.from('ZLIB\0\0\0\0\0\0\0\0');
  zhead.writeUInt32BE(payload.length, 8);
  const badChdr = Buffer.from(chdr);
  badChdr.writeUInt32LE(2, 0);
  const good = elfFile(dir, 'good', elf([
    { name: '.compressed', flags: 0x800, data: Buffer.concat([chdr, deflateSync(payload)]) },
    { name: '.zdebug_info', data: Buffer.concat([zhead, deflateSync(payload)]) },
    { name: '.zstd', flags: 0x800, data: Buffer.concat([badChdr, Buffer.alloc(4)]) },
    { name: '.broken', flags: 0x800, data: Buffer.concat([chdr, Buffer.from('not zlib')]) },
    { name: '.bss', type: 8, data: Buffer.alloc(0), addr: 0x5000, size: 0x100 },
    { name: '.data', data: Buffer.from('abcdefgh'), addr: 0x4000 },
  ]));
  const file = await ElfFile.open(good, budget());
  t.teardown(() => file.close());
  t.equal((await file.sectionBytes(file.section('.compressed')!, 1024)).toString(), payload.toString(), 'SHF_COMPRESSED (zlib)');
  t.equal((await file.sectionBytes(file.section('.zdebug_info')!, 1024)).toString(), payload.toString(), '.zdebug_ ("ZLIB" and a big-endian size)');
  await t.rejects(file.sectionBytes(file.section('.zstd')!, 1024), { code: 'ENOTSUP', message: /compressed other than with zlib/ });
  await t.rejects(file.sectionBytes(file.section('.broken')!, 1024), { code: 'ENOTSUP', message: /does not inflate/ });
  await t.rejects(file.sectionBytes(file.section('.compressed')!, 4), { code: 'ENOTSUP', message: /more than the 4 read/ });
  await t.rejects(file.sectionBytes(file.section('.compressed')!, 30), { code: 'ENOTSUP', message: /inflates to 14 bytes, more than the 30|is \d+ bytes, more than the 30 read/ });
  t.equal((await file.sectionBytes(file.section('.bss')!, 1024)).length, 0, 'NOBITS has no bytes');
  t.equal(file.fileOffsetOf(0x4002), file.section('.data')!.offset + 2);
  t.equal(file.fileOffsetOf(0x5000), null, 'NOBITS is not in the file');
  t.equal(file.sectionAt(0x5000)?.name, '.bss');
  t.equal(await file.symbols(() => true, 1024), null, 'no .symtab: stripped');

  const tight = new ReadBudget(performance.now() + 10000, 100);
  await t.rejects(ElfFile.open(good, tight), { code: 'ENOTSUP', message: /would pass the bytes allowed/ });
  await t.rejects(ElfFile.open(elfFile(dir, 'text', Buffer.from('#!/bin/sh\n'.padEnd(80))), budget()), { code: 'ENOTSUP', message: /not an ELF file/ });
  await t.rejects(ElfFile.open(elfFile(dir, 'm32', elf([], (h) => (h[4] = 1))), budget()), { code: 'ENOTSUP', message: /not a 64-bit little-endian/ });
  await t.rejects(ElfFile.open(elfFile(dir, 'nosections', elf([], (h) => h.writeUInt16LE(0, 60))), budget()), { code: 'ENOTSUP', message: /no readable section headers/ });
  await t.rejects(ElfFile.open(path.join(dir, 'absent'), budget()), { code: 'ENOENT' });
});

t.test('a file system that does not answer: ETIMEDOUT, and no new file opened meanwhile', async (t) => {
  let release: (() => void) | undefined;
  let opens = 0;
  const stuck = t.mockRequire<typeof import('../src/runtimes/elf-file')>('../src/runtimes/elf-file', {
    'node:fs': {
      ...fs,
      promises: {
        ...fs.promises,
        // The first open never returns (until released); later ones fail at once.
        open: () => (opens++ === 0 ? new Promise((_, reject) => (release = () => reject(new Error('gone')))) : Promise.reject(new Error('no such file'))),
      },
    },
  });
  const budget = new stuck.ReadBudget(performance.now() + 50, 1024);
  await t.rejects(stuck.ElfFile.open('/nfs/dead/program', budget), { code: 'ETIMEDOUT', message: /opening \/nfs\/dead\/program did not return in time/ });
  await t.rejects(stuck.ElfFile.open('/bin/sh', new stuck.ReadBudget(performance.now() + 5000, 1 << 20)), { code: 'ETIMEDOUT', message: /an earlier read of a program file has not returned/ });
  release!();
  await new Promise((resolve) => setImmediate(resolve));
  await t.rejects(stuck.ElfFile.open('/bin/sh', new stuck.ReadBudget(performance.now() + 5000, 1 << 20)), /no such file/, 'once it returns, files are opened again');
});

t.test('pclntab headers of formats not read', async (t) => {
  const header = (magic: number, ptrSize = 8, nfunc = 1): Buffer => {
    const b = Buffer.alloc(72);
    b.writeUInt32LE(magic, 0);
    b[6] = 1;
    b[7] = ptrSize;
    b.writeBigUInt64LE(BigInt(nfunc), 8);
    return b;
  };
  const reader = (bytes: Buffer) => async (addr: number, length: number) => bytes.subarray(addr, addr + length);
  t.equal(await GoPclntab.open(reader(header(0xfffffffb)), 0, 0, 0), null, 'Go 1.2–1.15');
  t.equal(await GoPclntab.open(reader(header(0xfffffffa)), 0, 0, 0), null, 'Go 1.16–1.17');
  t.equal(await GoPclntab.open(reader(header(0xfffffff0, 4)), 0, 0, 0), null, '32-bit');
  t.equal(await GoPclntab.open(reader(header(0xfffffff0, 8, 0)), 0, 0, 0), null, 'no functions');
  t.equal(await GoPclntab.open(reader(Buffer.alloc(10)), 0, 0, 0), null, 'too short');
  t.equal(await GoPclntab.open(reader(header(0xfffffff1, 8, 100)), 0, 0, 0), null, 'a function table past the end');
});

t.test('DWARF: the rarer shapes a real file has, and truncated tables', async (t) => {
  // A v2–v4 unit with an address size of its own (2: AVR, MSP430; 1 is legal too): DW_FORM_addr
  // reads that many bytes, and in v2 DW_FORM_ref_addr is address-sized as well.
  const small = (version: number, addressSize: number, dies: number[]) => {
    const body = [...u16(version), ...u32(0), addressSize, ...dies];
    return [...u32(body.length), ...body];
  };
  const abbrevs = Buffer.from([
    ...abbrev(1, 0x11, true, [[0x03, 0x08]]), // compile unit: name only (no language: read as Go)
    ...abbrev(2, 0x13, true, [[0x03, 0x0e], [0x01, 0x01]]), // struct: name (strp), low_pc (addr); no byte_size
    ...abbrev(3, 0x0d, false, [[0x03, 0x08], [0x38, 0x0b], [0x49, 0x10]]), // member: type by ref_addr
    ...abbrev(4, 0x16, false, [[0x03, 0x08], [0x49, 0x13]]), // typedef: type by ref4
    ...abbrev(5, 0x11, false, [[0x03, 0x08]]), // a unit with no children
    0,
  ]);
  const strings = Buffer.from('\0runtime.g\0runtime.m'); // the last name without its NUL: it ends with the section
  // Unit 1 (v2, 2-byte addresses): runtime.g { a: ref_addr → typedef → ref4 past every unit; b: → a null DIE }.
  // Offsets from the unit's start (a v2 header is 11 bytes): the typedef at 11 + 23, the
  // struct's closing 0 at 11 + 22.
  const dies2 = [
    1, ...str('u'), // 0: compile unit
    2, ...u32(1), ...u16(0x1234), // 3: struct runtime.g
    3, ...str('a'), 0, ...u16(11 + 23), // 10: member a → the typedef
    3, ...str('b'), 8, ...u16(11 + 22), // 16: member b → the null entry
    0, // 22
    4, ...str('t'), ...u32(0x7fff), // 23: typedef t → past every unit
    0, // 30
  ];
  // Unit 2 (v3, 1-byte addresses): runtime.m by a strp that runs to the end of .debug_str; unit 3: no children.
  const dies3 = [1, ...str('v'), 2, ...u32(11), 0x42, 0, 0];
  const info = Buffer.from([...small(2, 2, dies2), ...small(3, 1, dies3), ...small(4, 8, [5, ...str('w')])]);
  const facts = readDwarfFacts(info, abbrevs, strings, new Set(['runtime.g', 'runtime.m']), []);
  const g = facts.structs.get('runtime.g')!;
  t.equal(g.size, null, 'a struct without DW_AT_byte_size');
  t.match(g.members.get('a'), { offset: 0, size: null, typeName: 't' }, 'a typedef whose type is in no unit: named, not sized');
  t.match(g.members.get('b'), { offset: 8, size: null, typeName: null }, 'a type reference to a null entry');
  t.ok(facts.structs.has('runtime.m'), 'a name read through .debug_str to its end');
  // Without .debug_str, or with an offset past it, a strp name is not known.
  t.equal(readDwarfFacts(info, abbrevs, null, new Set(['runtime.g']), []).structs.size, 0, 'no .debug_str: no names by strp');
  t.equal(readDwarfFacts(info, abbrevs, Buffer.from('\0'), new Set(['runtime.g']), []).structs.size, 0, 'a strp past .debug_str');
  // Abbreviation tables cut short inside a ULEB128 or an implicit constant's SLEB128.
  t.throws(() => readDwarfFacts(info, Buffer.from([0x81]), null, new Set(), []), { code: 'ENOTSUP', message: /malformed DWARF: uleb128 past the end/ });
  t.throws(() => readDwarfFacts(info, Buffer.from([1, 0x11, 1, 0x0b, 0x21, 0x80]), null, new Set(), []), { code: 'ENOTSUP', message: /malformed DWARF: sleb128 past the end/ });
});

t.test('ELF: symbol tables and section headers that point past what they have', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-elf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const budget = () => new ReadBudget(performance.now() + 10000, 1 << 20);
  // .symtab (Elf64_Sym: name u32, info u8, other u8, shndx u16, value u64, size u64) linked
  // to .strtab (section 2), whose last name has no NUL: one symbol named there, one past it.
  const sym = (name: number, value: number) => {
    const b = Buffer.alloc(24);
    b.writeUInt32LE(name, 0);
    b[4] = 0x12; // STB_GLOBAL, STT_FUNC
    b.writeBigUInt64LE(BigInt(value), 8);
    b.writeBigUInt64LE(16n, 16);
    return b;
  };
  const strtab = Buffer.from('\0main.a\0main.end');
  const symtab = Buffer.concat([Buffer.alloc(24), sym(1, 0x1000), sym(8, 0x2000), sym(500, 0x3000)]);
  const bytes = elf([{ name: '.symtab', type: 2, data: symtab }, { name: '.strtab', type: 3, data: strtab }]);
  const shoff = Number(bytes.readBigUInt64LE(40));
  bytes.writeUInt32LE(2, shoff + 64 + 40); // .symtab's sh_link: .strtab
  const file = await ElfFile.open(elfFile(dir, 'symbols', bytes), budget());
  t.teardown(() => file.close());
  t.same((await file.symbols(() => true, 1024))!.map((s) => [s.name, s.value]), [['main.a', 0x1000], ['main.end', 0x2000]], 'a name that ends with the table; none for a name offset past it');
  t.equal((await file.read(bytes.length - 4, 64)).length, 4, 'fewer bytes at the end of the file');

  // sh_link of .symtab names no section: no symbols to read.
  const unlinked = Buffer.from(bytes);
  unlinked.writeUInt32LE(40, shoff + 64 + 40);
  const lost = await ElfFile.open(elfFile(dir, 'unlinked', unlinked), budget());
  t.teardown(() => lost.close());
  t.equal(await lost.symbols(() => true, 1024), null, 'a symbol table whose string table is not there');

  // The section-name table (the last header) runs past the end of the file.
  const names = Buffer.from(bytes);
  names.writeBigUInt64LE(1n << 40n, shoff + 3 * 64 + 32);
  await t.rejects(ElfFile.open(elfFile(dir, 'names', names), budget()), { code: 'ENOTSUP', message: /has no readable section names/ });

  // SHF_COMPRESSED whose header (Elf64_Chdr: type, reserved, size, alignment) declares more than is read.
  const chdr = Buffer.alloc(24);
  chdr.writeUInt32LE(1, 0);
  chdr.writeBigUInt64LE(1000n, 8);
  const big = await ElfFile.open(elfFile(dir, 'big', elf([{ name: '.debug_info', flags: 0x800, data: Buffer.concat([chdr, deflateSync(Buffer.alloc(1000))]) }])), budget());
  t.teardown(() => big.close());
  await t.rejects(big.sectionBytes(big.section('.debug_info')!, 100), { code: 'ENOTSUP', message: /inflates to 1000 bytes, more than the 100 read/ });
});

/**
 * What go-binary.ts reads from a Go executable, in files built here with the layouts Go's
 * linker writes: .go.buildinfo ("\xff Go buildinf:", pointer size, flags; from Go 1.18 the
 * version inline as a uvarint-prefixed string at 32 (flag 2), before that a pointer at 16
 * to runtime.buildVersion's string header { ptr, len }), a pcHeader at .gopclntab and
 * runtime.firstmoduledata in .noptrdata (pclntab, funcnametab slice, …, noptrbss,
 * enoptrbss, …, rodata, gofunc), as src/runtime/symtab.go lays them out.
 */
t.test('Go executables: versions, moduledata and what is missing, in files built by the layout', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-gobin-'));
  t.teardown(() => {
    forgetGoBinaries();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const budget = () => new ReadBudget(performance.now() + 10000, 1 << 24);
  let n = 0;
  const analyse = async (bytes: Buffer) => (await goBinary(elfFile(dir, `go${n++}`, bytes), budget())).binary!;
  const word = (...values: number[]) => Buffer.concat(values.map((v) => Buffer.from(u64(v))));
  const MAGIC = '\xff Go buildinf:';
  const inline = (version: string, ptrSize = 8) => Buffer.concat([Buffer.from(MAGIC, 'latin1'), Buffer.from([ptrSize, 2]), Buffer.alloc(16), Buffer.from(uleb(version.length)), Buffer.from(version)]);
  const pointer = (at: number, flags = 0, ptrSize = 8) => Buffer.concat([Buffer.from(MAGIC, 'latin1'), Buffer.from([ptrSize, flags]), word(at, 0)]);
  const buildinfo = (data: Buffer) => ({ name: '.go.buildinfo', data, addr: 0x500000 });

  t.equal((await analyse(elf([buildinfo(inline('go1.21.4'))]))).version, 'go1.21.4', 'Go 1.18+: inline');
  t.equal((await analyse(elf([buildinfo(inline('devel go1.22-abc'))]))).version, 'devel go1.22-abc', 'a development toolchain');
  t.equal((await analyse(elf([buildinfo(inline('java1.8'))]))).version, null, 'not a Go version');
  t.equal((await analyse(elf([buildinfo(Buffer.from('not build info, not at all, no'.padEnd(40)))]))).version, null, 'no magic');
  t.equal((await analyse(elf([{ name: '.gopclntab', data: Buffer.alloc(8), addr: 0x900000 }]))).version, null, 'no .go.buildinfo (Go before 1.13)');

  // Before Go 1.18: .go.buildinfo → runtime.buildVersion (in .data) → the bytes (in .rodata).
  const old = (header: Buffer, version = 'go1.17.13', extra: { name: string; data: Buffer; addr: number }[] = []) =>
    elf([buildinfo(header), { name: '.data', data: word(0x700000, version.length), addr: 0x600000 }, { name: '.rodata', data: Buffer.from(version), addr: 0x700000 }, ...extra]);
  t.equal((await analyse(old(pointer(0x600000)))).version, 'go1.17.13', 'Go 1.13–1.17: through a string header');
  t.equal((await analyse(old(pointer(0x600000, 1)))).version, null, 'big-endian');
  t.equal((await analyse(old(pointer(0x600000, 0, 4)))).version, null, '32-bit pointers');
  t.equal((await analyse(old(pointer(0x123)))).version, null, 'a header pointer to no section');
  t.equal((await analyse(old(pointer(0x600008)))).version, null, 'a string header pointer into .data: its bytes point nowhere');
  t.equal((await analyse(old(pointer(0x600000), ''))).version, null, 'an empty version');
  t.equal((await analyse(old(pointer(0x600000), 'x'.repeat(65)))).version, null, 'a version longer than any');
  t.equal((await analyse(old(pointer(0x600000), 'gcc-13.2'))).version, null, 'not a Go version');
  // The string header in a section whose bytes end with the file.
  const short = old(pointer(0x800000), 'go1.17', [{ name: '.tail', data: Buffer.alloc(16), addr: 0x800000 }]);
  short.writeBigUInt64LE(BigInt(short.length - 8), Number(short.readBigUInt64LE(40)) + 4 * 64 + 24);
  t.equal((await analyse(short)).version, null, 'a string header cut by the end of the file');

  // runtime.waitReasonStrings without symbols: the string headers in .data whose entry 1 is
  // { "GC assist marking", 17 } (entry 0: the empty string), each pointing into .rodata.
  const reasons = (data: Buffer) => elf([buildinfo(inline('go1.19')), { name: '.rodata', data: Buffer.from('GC assist markingchan receive'), addr: 0x700000 }, { name: '.data', data, addr: 0x600000 }]);
  t.same((await analyse(reasons(word(0, 0, 0x700000, 17, 0x700011, 12, 0x700000, 0)))).waitReasons, ['', 'GC assist marking', 'chan receive'], 'found through the bytes');
  t.equal((await analyse(reasons(word(0, 0, 0x700000, 18, 0, 0)))).waitReasons, null, 'the bytes, but no header with their length');
  // No symbols, no pclntab, no DWARF: why goroutines cannot be read.
  const bare = await analyse(old(pointer(0x600000)));
  t.match(bare, { machine: 'x64', pie: false, allgs: null, layout: null, pclntab: null, waitReasons: null, unreadable: /stripped.*pclntab is not in a format read here/ });
  const arm = await analyse(elf([buildinfo(inline('go1.21.4'))], (h) => h.writeUInt16LE(183, 18)));
  t.equal(arm.machine, 'arm64', 'EM_AARCH64');
  const riscv = await analyse(elf([buildinfo(inline('go1.21.4'))], (h) => h.writeUInt16LE(243, 18)));
  t.match(riscv, { machine: null, unreadable: /ELF machine 243; goroutines are read on x86-64 and arm64 only/ });

  // A symbol table: without runtime.allgs; with it but no DWARF; with DWARF that has no runtime.g.
  const symtab = (names: string[]) => {
    const strings = Buffer.from(`\0${names.map((s) => `${s}\0`).join('')}`);
    let at = 1;
    const entries = names.map((name) => {
      const e = Buffer.alloc(24);
      e.writeUInt32LE(at, 0);
      at += name.length + 1;
      e.writeBigUInt64LE(0x600100n, 8);
      e.writeBigUInt64LE(8n, 16);
      return e;
    });
    return [{ name: '.symtab', type: 2, data: Buffer.concat([Buffer.alloc(24), ...entries]) }, { name: '.strtab', type: 3, data: strings }];
  };
  const linked = (bytes: Buffer, symtabIndex: number) => {
    bytes.writeUInt32LE(symtabIndex + 1, Number(bytes.readBigUInt64LE(40)) + symtabIndex * 64 + 40); // sh_link: the next section
    return bytes;
  };
  t.match(await analyse(linked(elf([buildinfo(inline('go1.21.4')), ...symtab(['main.main'])]), 2)), { unreadable: /^runtime\.allgs is not in the symbol table/ });
  t.match(await analyse(linked(elf([buildinfo(inline('go1.21.4')), ...symtab(['runtime.allgs'])]), 2)), { allgs: 0x600100, unreadable: /^the program has no DWARF/ });
  const goUnit = Buffer.from(unit(4, [1, ...str('main'), 0x16, 0]));
  const goAbbrev = Buffer.from([...abbrev(1, 0x11, true, [[0x03, 0x08], [0x13, 0x0b]]), 0]);
  const dwarf = [{ name: '.debug_info', data: goUnit }, { name: '.debug_abbrev', data: goAbbrev }, { name: '.debug_str', data: Buffer.from('\0') }];
  t.match(await analyse(linked(elf([buildinfo(inline('go1.21.4')), ...symtab(['runtime.allgs']), ...dwarf]), 2)), { layout: null, unreadable: /^the DWARF of the program does not describe runtime\.g/ });

  // runtime.firstmoduledata without symbols: the word in .noptrdata equal to the pclntab's
  // address, then funcnametab's (pclntab + pcHeader.funcnameOffset); gofunc after rodata.
  const pcHeader = Buffer.alloc(72);
  pcHeader.writeUInt32LE(0xfffffff0, 0);
  pcHeader[6] = 1;
  pcHeader[7] = 8;
  pcHeader.writeBigUInt64LE(1n, 8);
  pcHeader.writeBigUInt64LE(0x80n, 32); // funcnameOffset
  pcHeader.writeBigUInt64LE(0x48n, 64); // pclnOffset: the functab right after
  const pcln = Buffer.concat([pcHeader, Buffer.alloc(64)]);
  const rodata = { name: '.rodata', data: Buffer.alloc(64), addr: 0x700000 };
  const noptrbss = { name: '.noptrbss', type: 8, data: Buffer.alloc(0), addr: 0xb00000, size: 0x100 };
  const module = (fields: number[]) => elf([buildinfo(inline('go1.19')), { name: '.gopclntab', data: pcln, addr: 0x900000 }, { name: '.noptrdata', data: word(0x1234, 0x900000, 0x900080, ...fields), addr: 0xa00000 }, rodata, noptrbss]);
  const gofuncFields = [0, 0xb00000, 0xb00100, 0, 0x700000, 0x700000, 0x700010];
  t.not((await analyse(module(gofuncFields))).pclntab, null, 'moduledata found, gofunc inside .rodata');
  t.not((await analyse(module([0, 0xb00000, 0xb00100, 0, 0x700000, 0x7fff00]))).pclntab, null, 'gofunc outside .rodata: not used');
  t.not((await analyse(module([0, 0xb00000, 0xb00100, 1, 2, 3]))).pclntab, null, 'no rodata after noptrbss: no gofunc');
  t.not((await analyse(module([0, 5, 6]))).pclntab, null, 'no noptrbss pair: no gofunc');
  t.not((await analyse(elf([buildinfo(inline('go1.19')), { name: '.gopclntab', data: pcln, addr: 0x900000 }, { name: '.noptrdata', data: word(1, 2, 3), addr: 0xa00000 }, rodata]))).pclntab, null, 'no moduledata in .noptrdata');
  t.not((await analyse(elf([buildinfo(inline('go1.19')), { name: '.gopclntab', data: pcln, addr: 0x900000 }, rodata]))).pclntab, null, 'no .noptrdata');
  // A pcHeader cut short by the end of the file.
  const cut = elf([buildinfo(inline('go1.19')), { name: '.gopclntab', data: Buffer.alloc(16), addr: 0x900000 }, { name: '.noptrdata', data: word(0x900000), addr: 0xa00000 }]);
  cut.writeBigUInt64LE(BigInt(cut.length - 16), Number(cut.readBigUInt64LE(40)) + 2 * 64 + 24);
  t.equal((await analyse(cut)).pclntab, null, 'a pcHeader cut by the end of the file');
});
