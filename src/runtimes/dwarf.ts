/**
 * The little of DWARF (versions 2 to 5, 32- and 64-bit) that says how a runtime lays out
 * its structures: named structure types with their members' offsets and sizes, and
 * named constants. Enough for Go's runtime.g, runtime.gobuf and the waitReason
 * constants, read from the binary itself instead of offsets written down per version.
 *
 * One linear walk over .debug_info; compilation units of other languages (the C parts
 * of a cgo binary) are skipped whole by their length.
 */
import { IokitSnapError } from '../errors';

const DW_TAG_member = 0x0d;
const DW_TAG_structure_type = 0x13;
const DW_TAG_constant = 0x27;
const DW_TAG_compile_unit = 0x11;
const DW_AT_name = 0x03;
const DW_AT_byte_size = 0x0b;
const DW_AT_language = 0x13;
const DW_AT_const_value = 0x1c;
const DW_AT_data_member_location = 0x38;
const DW_AT_type = 0x49;
const DW_LANG_Go = 0x16;

export interface DwarfMember {
  offset: number;
  /** The member type's byte size (through typedefs); null when the type does not say. */
  size: number | null;
  /** The member type's name ("runtime.gobuf", "uint32"), when it has one. */
  typeName: string | null;
}

export interface DwarfStruct {
  size: number | null;
  members: Map<string, DwarfMember>;
}

export interface DwarfFacts {
  structs: Map<string, DwarfStruct>;
  /** Constants whose names start with one of the prefixes asked for. */
  constants: Map<string, number>;
}

interface Abbrev {
  tag: number;
  children: boolean;
  attrs: number[]; // name, form, implicit const (as pairs of three)
}

interface Unit {
  start: number;
  end: number;
  version: number;
  addressSize: number;
  offsetSize: number;
  abbrevs: Map<number, Abbrev>;
  dieStart: number;
}

class Reader {
  constructor(
    readonly buf: Buffer,
    public at = 0,
  ) {}
  u8(): number {
    return this.buf[this.at++];
  }
  /** Past `count` bytes (a block whose length was just read: `at += read()` would add to the old `at`). */
  skip(count: number): void {
    this.at += count;
  }
  u16(): number {
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  u64(): number {
    const v = this.buf.readUInt32LE(this.at + 4) * 0x1_0000_0000 + this.buf.readUInt32LE(this.at);
    this.at += 8;
    return v;
  }
  uleb(): number {
    let result = 0;
    let scale = 1;
    for (;;) {
      const byte = this.buf[this.at++];
      if (byte === undefined) throw new RangeError('uleb128 past the end');
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return result;
      scale *= 128;
    }
  }
  sleb(): number {
    let result = 0;
    let scale = 1;
    let byte: number;
    do {
      byte = this.buf[this.at++];
      if (byte === undefined) throw new RangeError('sleb128 past the end');
      result += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte & 0x80);
    return byte & 0x40 ? result - scale : result;
  }
  sized(size: number): number {
    return size === 1 ? this.u8() : size === 2 ? this.u16() : size === 4 ? this.u32() : this.u64();
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.at);
    if (end < 0) throw new RangeError('string past the end');
    const s = this.buf.toString('utf8', this.at, end);
    this.at = end + 1;
    return s;
  }
}

function parseAbbrevs(abbrev: Buffer, offset: number): Map<number, Abbrev> {
  const r = new Reader(abbrev, offset);
  const table = new Map<number, Abbrev>();
  for (;;) {
    const code = r.uleb();
    if (code === 0) return table;
    const tag = r.uleb();
    const children = r.u8() === 1;
    const attrs: number[] = [];
    for (;;) {
      const name = r.uleb();
      const form = r.uleb();
      if (name === 0 && form === 0) break;
      attrs.push(name, form, form === 0x21 ? r.sleb() : 0);
    }
    table.set(code, { tag, children, attrs });
  }
}

/** An attribute's value: a number, a string, or undefined for forms that are skipped. */
function readForm(r: Reader, form: number, unit: Unit, strings: Buffer | null, implicit: number): number | string | undefined {
  switch (form) {
    case 0x01: return r.sized(unit.addressSize); // addr
    case 0x03: r.skip(r.u16()); return undefined; // block2
    case 0x04: r.skip(r.u32()); return undefined; // block4
    case 0x05: return r.u16(); // data2
    case 0x06: return r.u32(); // data4
    case 0x07: return r.u64(); // data8
    case 0x08: return r.cstring(); // string
    case 0x09: case 0x18: r.skip(r.uleb()); return undefined; // block, exprloc
    case 0x0a: r.skip(r.u8()); return undefined; // block1
    case 0x0b: return r.u8(); // data1
    case 0x0c: return r.u8(); // flag
    case 0x0d: return r.sleb(); // sdata
    case 0x0e: { // strp
      const offset = r.sized(unit.offsetSize);
      if (strings === null || offset >= strings.length) return undefined;
      const end = strings.indexOf(0, offset);
      return strings.toString('utf8', offset, end < 0 ? strings.length : end);
    }
    case 0x0f: return r.uleb(); // udata
    case 0x10: return r.sized(unit.version <= 2 ? unit.addressSize : unit.offsetSize); // ref_addr: absolute
    case 0x11: return unit.start + r.u8(); // ref1..ref8, ref_udata: unit-relative
    case 0x12: return unit.start + r.u16();
    case 0x13: return unit.start + r.u32();
    case 0x14: return unit.start + r.u64();
    case 0x15: return unit.start + r.uleb();
    case 0x16: return readForm(r, r.uleb(), unit, strings, implicit); // indirect
    case 0x17: case 0x1d: case 0x1f: case 0x1f20: case 0x1f21: r.at += unit.offsetSize; return undefined; // sec_offset, strp_sup, line_strp, GNU alt
    case 0x19: return 1; // flag_present
    case 0x1a: case 0x1b: case 0x22: case 0x23: case 0x1f01: case 0x1f02: r.uleb(); return undefined; // strx, addrx, loclistx, rnglistx
    case 0x1c: r.at += 4; return undefined; // ref_sup4
    case 0x1e: r.at += 16; return undefined; // data16
    case 0x20: case 0x24: r.at += 8; return undefined; // ref_sig8, ref_sup8
    case 0x21: return implicit; // implicit_const
    case 0x25: case 0x29: r.at += 1; return undefined; // strx1, addrx1
    case 0x26: case 0x2a: r.at += 2; return undefined;
    case 0x27: case 0x2b: r.at += 3; return undefined;
    case 0x28: case 0x2c: r.at += 4; return undefined;
    default:
      throw new IokitSnapError('ENOTSUP', `DWARF attribute form 0x${form.toString(16)} is not known`);
  }
}

function readUnits(info: Buffer, abbrev: Buffer): Unit[] {
  const units: Unit[] = [];
  const tables = new Map<number, Map<number, Abbrev>>();
  let at = 0;
  while (at + 11 <= info.length) {
    const r = new Reader(info, at);
    let length = r.u32();
    let offsetSize = 4;
    if (length === 0xffffffff) {
      length = r.u64();
      offsetSize = 8;
    }
    const end = r.at + length;
    if (length === 0 || end > info.length) break;
    const version = r.u16();
    let addressSize: number;
    let abbrevOffset: number;
    if (version >= 5) {
      r.u8(); // unit_type
      addressSize = r.u8();
      abbrevOffset = r.sized(offsetSize);
    } else {
      abbrevOffset = r.sized(offsetSize);
      addressSize = r.u8();
    }
    if (version < 2 || version > 5 || abbrevOffset >= abbrev.length) break;
    let abbrevs = tables.get(abbrevOffset);
    if (abbrevs === undefined) tables.set(abbrevOffset, (abbrevs = parseAbbrevs(abbrev, abbrevOffset)));
    units.push({ start: at, end, version, addressSize, offsetSize, abbrevs, dieStart: r.at });
    at = end;
  }
  return units;
}

interface Die {
  tag: number;
  children: boolean;
  name?: string;
  byteSize?: number;
  type?: number;
  memberOffset?: number;
  constValue?: number;
  language?: number;
}

function readDie(r: Reader, unit: Unit, strings: Buffer | null): Die | null {
  const code = r.uleb();
  if (code === 0) return null;
  const abbrev = unit.abbrevs.get(code);
  if (abbrev === undefined) throw new IokitSnapError('ENOTSUP', `DWARF abbreviation ${code} is not defined`);
  const die: Die = { tag: abbrev.tag, children: abbrev.children };
  const attrs = abbrev.attrs;
  for (let i = 0; i < attrs.length; i += 3) {
    const value = readForm(r, attrs[i + 1], unit, strings, attrs[i + 2]);
    switch (attrs[i]) {
      case DW_AT_name: if (typeof value === 'string') die.name = value; break;
      case DW_AT_byte_size: if (typeof value === 'number') die.byteSize = value; break;
      case DW_AT_type: if (typeof value === 'number') die.type = value; break;
      case DW_AT_data_member_location: if (typeof value === 'number') die.memberOffset = value; break;
      case DW_AT_const_value: if (typeof value === 'number') die.constValue = value; break;
      case DW_AT_language: if (typeof value === 'number') die.language = value; break;
    }
  }
  return die;
}

/**
 * The structures named in `structNames` and the constants whose names start with one of
 * `constantPrefixes`, from Go compilation units. Throws ENOEXEC on a malformed section.
 */
export function readDwarfFacts(info: Buffer, abbrev: Buffer, strings: Buffer | null, structNames: ReadonlySet<string>, constantPrefixes: readonly string[]): DwarfFacts {
  const structs = new Map<string, DwarfStruct>();
  const constants = new Map<string, number>();
  const memberTypes: { member: DwarfMember; type: number }[] = [];
  let units: Unit[];
  try {
    units = readUnits(info, abbrev);
    for (const unit of units) {
      const r = new Reader(info, unit.dieStart);
      const top = readDie(r, unit, strings);
      if (top === null || (top.tag === DW_TAG_compile_unit && top.language !== undefined && top.language !== DW_LANG_Go)) continue;
      let depth = top.children ? 1 : 0;
      let current: DwarfStruct | null = null; // the wanted struct whose members are being read
      while (depth > 0 && r.at < unit.end) {
        const die = readDie(r, unit, strings);
        if (die === null) {
          depth--;
          if (depth <= 1) current = null;
          continue;
        }
        if (depth === 1) {
          if (die.tag === DW_TAG_structure_type && die.name !== undefined && structNames.has(die.name) && !structs.has(die.name)) {
            current = { size: die.byteSize ?? null, members: new Map() };
            structs.set(die.name, current);
          } else if (die.tag === DW_TAG_constant && die.name !== undefined && die.constValue !== undefined && constantPrefixes.some((p) => die.name!.startsWith(p))) {
            constants.set(die.name, die.constValue);
          }
        } else if (depth === 2 && current !== null && die.tag === DW_TAG_member && die.name !== undefined && die.memberOffset !== undefined) {
          const member: DwarfMember = { offset: die.memberOffset, size: null, typeName: null };
          current.members.set(die.name, member);
          if (die.type !== undefined) memberTypes.push({ member, type: die.type });
        }
        if (die.children) depth++;
      }
    }
    // The members' types: their sizes through typedefs.
    for (const { member, type } of memberTypes) {
      let ref: number | undefined = type;
      for (let hops = 0; ref !== undefined && hops < 8; hops++) {
        const unit = units.find((u) => ref! >= u.start && ref! < u.end);
        if (unit === undefined) break;
        const die = readDie(new Reader(info, ref), unit, strings);
        if (die === null) break;
        if (member.typeName === null && die.name !== undefined) member.typeName = die.name;
        if (die.byteSize !== undefined) {
          member.size = die.byteSize;
          break;
        }
        // No size here (a typedef, a pointer's target not sized): on to the type it names.
        ref = die.type;
      }
    }
  } catch (error) {
    if (error instanceof IokitSnapError) throw error;
    throw new IokitSnapError('ENOTSUP', `malformed DWARF: ${(error as Error).message}`);
  }
  return { structs, constants };
}
