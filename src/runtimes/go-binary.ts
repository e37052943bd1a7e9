/**
 * What a Go executable says about itself, read once per file and cached by its identity
 * (device, inode, size, mtime): whether it is Go at all, its Go version, where the
 * runtime keeps its goroutines (runtime.allgs, from .symtab), how runtime.g is laid out
 * (from DWARF), the wait-reason table, and its pclntab for naming pcs.
 *
 * Sources, in order of trust:
 *   - .go.buildinfo: the version ("go1.19.8"), in every Go binary since 1.13;
 *   - .symtab: runtime.allgs, runtime.allglen, runtime.waitReasonStrings,
 *     runtime.firstmoduledata (gone in a stripped binary, -ldflags=-s);
 *   - .debug_info (zlib-compressed by Go's linker, SHF_COMPRESSED or .zdebug_*): the
 *     members of runtime.g, runtime.gobuf, runtime.stack and runtime.m, and the
 *     runtime._G* status constants (gone with -ldflags=-w);
 *   - .gopclntab (kept by stripped binaries too): function names and inline trees.
 */
import * as fs from 'node:fs';
import { IokitSnapError } from '../errors';
import { readDwarfFacts, type DwarfFacts } from './dwarf';
import { ElfFile, ET_DYN, EM_AARCH64, EM_X86_64, ReadBudget, u64 } from './elf-file';
import { GoPclntab } from './gopclntab';

/** Bytes read from one program file for its analysis, at most (DWARF of a large program is tens of MB). */
const MAX_FILE_BYTES = 256 * 1024 * 1024;
const MAX_SECTION_BYTES = 128 * 1024 * 1024;
/** Binaries kept analysed (each keeps its file open for lazy pclntab reads). */
const CACHE_SIZE = 4;
const CHUNK = 16 * 1024;
const CHUNKS_KEPT = 256;

/** Offsets in runtime.g (and the few other structures) of what a goroutine read needs. */
export interface GLayout {
  /** Bytes of runtime.g to read, from 0: past the last field used. */
  span: number;
  stackLo: number;
  stackHi: number;
  m: number;
  schedSp: number;
  schedPc: number;
  schedBp: number;
  syscallSp: number;
  syscallPc: number;
  atomicstatus: number;
  goid: number;
  waitsince: number;
  waitreason: number;
  gopc: number;
  startpc: number;
  /** runtime.m.procid: the thread id of an M; null when DWARF does not have it. */
  mProcid: number | null;
  /** g.sched.g, which points back at the g itself (a check of every record read); null when not known. */
  schedG: number | null;
}

export interface GoBinary {
  /** "go1.19.8"; null when .go.buildinfo is missing or unreadable. */
  version: string | null;
  machine: 'x64' | 'arm64' | null;
  /** ET_DYN (PIE): its addresses move by the load bias. */
  pie: boolean;
  entry: number;
  allgs: number | null;
  allglen: number | null;
  waitReasonStrings: { addr: number; count: number } | null;
  layout: GLayout | null;
  /** Status names by value (runtime._Gwaiting → 'waiting'), from DWARF or the runtime's fixed values. */
  statusNames: Map<number, string>;
  /** waitReason constant names by value, from DWARF (a fallback for the strings). */
  waitReasonNames: Map<number, string>;
  pclntab: GoPclntab | null;
  /** .bss (where runtime.allgs lives), for finding allgs in a stripped binary. */
  bss: { addr: number; size: number } | null;
  /** Why goroutines cannot be read from this binary (stripped, no DWARF, …); null when they can. */
  unreadable: string | null;
  /** Wait-reason strings, read from a process's memory once (static data: the same in every process of the file). */
  waitReasons?: string[] | null;
  /** Stripped binaries: where the layout of runtime.g was inferred from (see go.ts), once found. */
  stripped?: StrippedFacts;
}

/** What a stripped binary's first read found, kept for the next reads (addresses as in the file, before the load bias). */
export interface StrippedFacts {
  allgs: number | null;
  layout: GLayout | null;
  /** Why it could not be found; null while not tried or when found. */
  failure: string | null;
}

/** The runtime's goroutine states (runtime2.go, unchanged since Go 1.14 added _Gpreempted). */
const FIXED_STATUS: [number, string][] = [
  [0, 'idle'],
  [1, 'runnable'],
  [2, 'running'],
  [3, 'syscall'],
  [4, 'waiting'],
  [5, 'moribund'],
  [6, 'dead'],
  [7, 'enqueue'],
  [8, 'copystack'],
  [9, 'preempted'],
];

interface CacheEntry {
  key: string;
  binary: Promise<GoBinary | null>;
  file: ElfFile | null;
  space: AddressSpaceReader | null;
}
const cache: CacheEntry[] = [];

/** Chunks of the file kept for lazy reads by virtual address. */
class AddressSpaceReader {
  private readonly chunks = new Map<number, Buffer>();
  budget: ReadBudget;

  constructor(
    private readonly file: ElfFile,
    budget: ReadBudget,
  ) {
    this.budget = budget;
  }

  read = async (addr: number, length: number): Promise<Buffer> => {
    const offset = this.file.fileOffsetOf(addr);
    if (offset === null) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    let at = offset;
    let left = Math.min(length, this.file.fileSize - offset);
    while (left > 0) {
      const index = Math.floor(at / CHUNK);
      let chunk = this.chunks.get(index);
      if (chunk === undefined) {
        this.file.budget = this.budget;
        chunk = await this.file.read(index * CHUNK, CHUNK);
        if (this.chunks.size >= CHUNKS_KEPT) this.chunks.delete(this.chunks.keys().next().value as number);
        this.chunks.set(index, chunk);
      } else {
        this.chunks.delete(index); // most recently used last
        this.chunks.set(index, chunk);
      }
      const from = at - index * CHUNK;
      const take = Math.min(left, chunk.length - from);
      if (take <= 0) break;
      parts.push(chunk.subarray(from, from + take));
      at += take;
      left -= take;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  };
}

/**
 * The Go facts of `path` (a process's /proc/<pid>/exe), from the cache when the file is
 * the same; null when it is not a Go program. Throws IokitSnapError when the file cannot
 * be read (ENOENT, EPERM, ETIMEDOUT, ENOTSUP for a format it does not read).
 */
export async function goBinary(path: string, budget: ReadBudget): Promise<{ binary: GoBinary | null; reader: ((addr: number, length: number) => Promise<Buffer>) | null }> {
  const stat = await raceStat(path, budget);
  const key = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  let entry = cache.find((e) => e.key === key);
  if (entry === undefined) {
    const created: CacheEntry = { key, file: null, space: null, binary: Promise.resolve(null) };
    created.binary = analyse(path, budget, created).catch((error: unknown) => {
      const at = cache.indexOf(created);
      if (at >= 0) cache.splice(at, 1); // a failed analysis is not kept: the next sample tries again
      created.file?.close();
      throw error;
    });
    cache.push(created);
    while (cache.length > CACHE_SIZE) cache.shift()!.file?.close();
    entry = created;
  } else {
    cache.splice(cache.indexOf(entry), 1);
    cache.push(entry);
  }
  const binary = await entry.binary;
  const space = entry.space;
  if (space === null) return { binary, reader: null };
  space.budget = budget;
  return { binary, reader: space.read };
}

/** Empties the cache (tests). */
export function forgetGoBinaries(): void {
  for (const entry of cache.splice(0)) entry.file?.close();
}

async function raceStat(path: string, budget: ReadBudget): Promise<fs.Stats> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fs.promises.stat(path),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new IokitSnapError('ETIMEDOUT', `stat of ${path} did not return in time: the file system that holds the program may hang`)), Math.max(0, budget.msLeft()));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function analyse(path: string, budget: ReadBudget, entry: CacheEntry): Promise<GoBinary | null> {
  const file = await ElfFile.open(path, new ReadBudget(budget.deadline, MAX_FILE_BYTES));
  entry.file = file;
  const isGo = file.sections.some((s) => s.name === '.go.buildinfo' || s.name.endsWith('.gopclntab') || s.name === '.note.go.buildid');
  if (!isGo) {
    file.close();
    entry.file = null;
    return null;
  }
  const machine = file.machine === EM_X86_64 ? 'x64' : file.machine === EM_AARCH64 ? 'arm64' : null;
  const space = new AddressSpaceReader(file, file.budget);
  entry.space = space;
  const binary: GoBinary = {
    version: await readVersion(file),
    machine,
    pie: file.type === ET_DYN,
    entry: file.entry,
    allgs: null,
    allglen: null,
    waitReasonStrings: null,
    layout: null,
    statusNames: new Map(FIXED_STATUS),
    waitReasonNames: new Map(),
    pclntab: null,
    bss: null,
    unreadable: null,
  };
  const bss = file.section('.bss');
  if (bss !== undefined) binary.bss = { addr: bss.addr, size: bss.size };
  if (machine === null) {
    binary.unreadable = `the program is for ELF machine ${file.machine}; goroutines are read on x86-64 and arm64 only`;
    return binary;
  }
  const wanted = new Set(['runtime.allgs', 'runtime.allglen', 'runtime.waitReasonStrings', 'runtime.firstmoduledata', 'go.func.*', 'go:func.*', 'runtime.pclntab', 'runtime.text']);
  const symbols = await file.symbols((name) => wanted.has(name), MAX_SECTION_BYTES);
  const symbol = (name: string) => symbols?.find((s) => s.name === name);
  binary.allgs = symbol('runtime.allgs')?.value ?? null;
  binary.allglen = symbol('runtime.allglen')?.value ?? null;
  const reasons = symbol('runtime.waitReasonStrings');
  if (reasons !== undefined && reasons.size >= 16) binary.waitReasonStrings = { addr: reasons.value, count: Math.floor(reasons.size / 16) };

  // The pclntab: its section (internal linking), or where runtime.firstmoduledata points.
  const pclnSection = file.sections.find((s) => s.name.endsWith('.gopclntab'));
  const moduledata = symbol('runtime.firstmoduledata')?.value ?? (pclnSection !== undefined ? await findModuledata(file, space, pclnSection.addr) : null);
  const fields = moduledata !== null ? await space.read(moduledata, 60 * 8) : Buffer.alloc(0);
  const field = (i: number): number => (fields.length >= (i + 1) * 8 ? u64(fields, i * 8) : 0);
  const pclnAddr = pclnSection?.addr ?? symbol('runtime.pclntab')?.value ?? field(0);
  const gofunc = symbol('go:func.*')?.value ?? symbol('go.func.*')?.value ?? gofuncFromModuledata(file, fields);
  const text = symbol('runtime.text')?.value ?? file.section('.text')?.addr ?? 0;
  if (pclnAddr !== 0) binary.pclntab = await GoPclntab.open(space.read, pclnAddr, gofunc ?? 0, text).catch(() => null);

  const info = file.section('.debug_info') ?? file.section('.zdebug_info');
  const abbrev = file.section('.debug_abbrev') ?? file.section('.zdebug_abbrev');
  let dwarf: DwarfFacts | null = null;
  if (info !== undefined && abbrev !== undefined) {
    const str = file.section('.debug_str') ?? file.section('.zdebug_str');
    const [infoBytes, abbrevBytes, strBytes] = await Promise.all([
      file.sectionBytes(info, MAX_SECTION_BYTES),
      file.sectionBytes(abbrev, MAX_SECTION_BYTES),
      str !== undefined ? file.sectionBytes(str, MAX_SECTION_BYTES) : Promise.resolve(null),
    ]);
    dwarf = readDwarfFacts(infoBytes, abbrevBytes, strBytes, new Set(['runtime.g', 'runtime.gobuf', 'runtime.stack', 'runtime.m']), ['runtime._G', 'runtime.waitReason']);
    binary.layout = layoutFromDwarf(dwarf);
    for (const [name, value] of dwarf.constants) {
      if (name.startsWith('runtime.waitReason')) binary.waitReasonNames.set(value, name.slice('runtime.'.length));
    }
    const fromDwarf = new Map<number, string>();
    for (const [name, value] of dwarf.constants) {
      const m = /^runtime\._G([a-z]+?)(_unused)?$/.exec(name);
      if (m !== null && !name.startsWith('runtime._GC') && !name.startsWith('runtime._Gscan') && name !== 'runtime._GoidCacheBatch') fromDwarf.set(value, m[1]);
    }
    if (fromDwarf.size >= 7) binary.statusNames = fromDwarf;
  }
  if (binary.waitReasonStrings === null) binary.waitReasons = await findWaitReasons(file, space);
  // Without allgs (no symbols) or the layout (no DWARF), go.ts finds them in the process's
  // memory and checks what it finds against the pclntab, which it must be able to read.
  if ((binary.allgs === null || binary.layout === null) && binary.pclntab === null) {
    const missing =
      symbols === null ? 'the program is stripped (built with -ldflags=-s)'
      : binary.allgs === null ? 'runtime.allgs is not in the symbol table'
      : info === undefined ? 'the program has no DWARF (built with -ldflags=-w)'
      : 'the DWARF of the program does not describe runtime.g';
    binary.unreadable = `${missing}, and its pclntab is not in a format read here (Go 1.18 or later), which finding the goroutines without them needs`;
  }
  return binary;
}

/**
 * runtime.waitReasonStrings without symbols: the array of string headers whose entry 1
 * is "GC assist marking" (waitReasonGCAssistMarking = 1 in every Go since 1.11), found
 * through where .rodata holds those bytes. Go's linker writes the headers' pointers into
 * the file (PIE too), so the strings are read from the file.
 */
async function findWaitReasons(file: ElfFile, space: AddressSpaceReader): Promise<string[] | null> {
  const rodata = file.section('.rodata');
  const data = file.section('.data');
  if (rodata === undefined || data === undefined || rodata.size > 256 * 1024 * 1024 || data.size > 64 * 1024 * 1024) return null;
  const needle = Buffer.from('GC assist marking');
  const text = await space.read(rodata.addr, rodata.size);
  const bytes = await space.read(data.addr, data.size);
  for (let found = text.indexOf(needle); found >= 0; found = text.indexOf(needle, found + 1)) {
    const addr = rodata.addr + found;
    for (let at = 16; at + 16 <= bytes.length; at += 8) {
      if (u64(bytes, at) !== addr || u64(bytes, at + 8) !== needle.length || u64(bytes, at - 8) !== 0) continue;
      const out: string[] = [''];
      for (let entry = at; entry + 16 <= bytes.length && out.length < 256; entry += 16) {
        const ptr = u64(bytes, entry);
        const length = u64(bytes, entry + 8);
        if (ptr < rodata.addr || ptr + length > rodata.addr + rodata.size || length === 0 || length > 64) break;
        out.push(text.toString('utf8', ptr - rodata.addr, ptr - rodata.addr + length));
      }
      return out;
    }
  }
  return null;
}

/** The Go version in .go.buildinfo: inline since Go 1.18 (flag 2), else through two string headers. */
async function readVersion(file: ElfFile): Promise<string | null> {
  const section = file.section('.go.buildinfo');
  if (section === undefined) return null;
  const head = await file.read(section.offset, Math.min(section.size, 64 + 256));
  if (head.length < 32 || head.toString('latin1', 0, 14) !== '\xff Go buildinf:') return null;
  const ptrSize = head[14];
  const flags = head[15];
  if ((flags & 2) !== 0) {
    let length = 0;
    let at = 32;
    for (let shift = 0; at < head.length && shift < 28; shift += 7) {
      const b = head[at++];
      length |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
    }
    const version = head.toString('utf8', at, Math.min(head.length, at + length));
    return /^go[0-9]/.test(version) || version.startsWith('devel') ? version : null;
  }
  if (ptrSize !== 8 || (flags & 1) !== 0) return null;
  // Before 1.18: a pointer to a string header { ptr, len } of the version.
  const headerAddr = u64(head, 16);
  const headerOffset = file.fileOffsetOf(headerAddr);
  if (headerOffset === null) return null;
  const stringHeader = await file.read(headerOffset, 16);
  if (stringHeader.length < 16) return null;
  const bytesOffset = file.fileOffsetOf(u64(stringHeader, 0));
  const length = u64(stringHeader, 8);
  if (bytesOffset === null || length === 0 || length > 64) return null;
  const version = (await file.read(bytesOffset, length)).toString('utf8');
  return /^go[0-9]/.test(version) ? version : null;
}

/**
 * runtime.firstmoduledata in a binary without symbols: the word in .noptrdata that holds
 * the pclntab's address, followed by funcnametab's slice header (pclntab + its offset).
 */
async function findModuledata(file: ElfFile, space: AddressSpaceReader, pclntab: number): Promise<number | null> {
  const section = file.section('.noptrdata');
  if (section === undefined || section.size > 64 * 1024 * 1024) return null;
  const bytes = await space.read(section.addr, section.size);
  const header = await space.read(pclntab, 48);
  if (header.length < 48) return null;
  const funcnametab = pclntab + u64(header, 32); // pcHeader.funcnameOffset
  for (let at = 0; at + 16 <= bytes.length; at += 8) {
    if (u64(bytes, at) === pclntab && u64(bytes, at + 8) === funcnametab) return section.addr + at;
  }
  return null;
}

/**
 * moduledata.gofunc (the base of funcdata offsets) without symbols: the word after
 * moduledata.rodata, which is the last word equal to .rodata's address in the few after
 * noptrbss/enoptrbss (types, which comes first, may equal it too).
 */
function gofuncFromModuledata(file: ElfFile, fields: Buffer): number | null {
  const noptrbss = file.section('.noptrbss');
  const rodata = file.section('.rodata');
  if (noptrbss === undefined || rodata === undefined) return null;
  const count = Math.floor(fields.length / 8);
  const at = (i: number): number => u64(fields, i * 8);
  for (let k = 0; k + 1 < count; k++) {
    if (at(k) !== noptrbss.addr || at(k + 1) !== noptrbss.addr + noptrbss.size) continue;
    let found = -1;
    for (let j = k + 2; j < Math.min(count - 1, k + 14); j++) if (at(j) === rodata.addr) found = j;
    if (found < 0) return null;
    const gofunc = at(found + 1);
    return gofunc >= rodata.addr && gofunc < rodata.addr + rodata.size ? gofunc : null;
  }
  return null;
}

function layoutFromDwarf(dwarf: DwarfFacts): GLayout | null {
  const g = dwarf.structs.get('runtime.g');
  const gobuf = dwarf.structs.get('runtime.gobuf');
  const stack = dwarf.structs.get('runtime.stack');
  if (g === undefined || gobuf === undefined || stack === undefined) return null;
  const member = (struct: typeof g, name: string) => struct.members.get(name);
  const sched = member(g, 'sched');
  const stk = member(g, 'stack');
  const need = ['m', 'syscallsp', 'syscallpc', 'atomicstatus', 'goid', 'waitsince', 'waitreason', 'gopc', 'startpc'].map((n) => member(g, n));
  const bufs = ['sp', 'pc', 'bp'].map((n) => member(gobuf, n));
  const lo = member(stack, 'lo');
  const hi = member(stack, 'hi');
  if (sched === undefined || stk === undefined || lo === undefined || hi === undefined || need.some((m) => m === undefined) || bufs.some((m) => m === undefined)) return null;
  const [m, syscallsp, syscallpc, atomicstatus, goid, waitsince, waitreason, gopc, startpc] = need as NonNullable<(typeof need)[number]>[];
  const [sp, pc, bp] = bufs as NonNullable<(typeof bufs)[number]>[];
  // Sizes the reader relies on: a 4-byte status, 8-byte ids and times, a 1-byte reason.
  if (atomicstatus.size !== 4 || goid.size !== 8 || waitsince.size !== 8 || waitreason.size !== 1) return null;
  const layout: GLayout = {
    span: 0,
    stackLo: stk.offset + lo.offset,
    stackHi: stk.offset + hi.offset,
    m: m.offset,
    schedSp: sched.offset + sp.offset,
    schedPc: sched.offset + pc.offset,
    schedBp: sched.offset + bp.offset,
    syscallSp: syscallsp.offset,
    syscallPc: syscallpc.offset,
    atomicstatus: atomicstatus.offset,
    goid: goid.offset,
    waitsince: waitsince.offset,
    waitreason: waitreason.offset,
    gopc: gopc.offset,
    startpc: startpc.offset,
    mProcid: dwarf.structs.get('runtime.m')?.members.get('procid')?.offset ?? null,
    schedG: gobuf.members.has('g') ? sched.offset + gobuf.members.get('g')!.offset : null,
  };
  layout.span = Math.max(layout.stackHi, layout.m, layout.schedSp, layout.schedPc, layout.schedBp, layout.syscallSp, layout.syscallPc, layout.goid, layout.waitsince, layout.gopc, layout.startpc) + 8;
  return layout;
}
