/**
 * Just enough of an ELF file to find a language runtime's tables in it: the header,
 * the section headers, a section's bytes (inflated when compressed), the symbol table.
 * 64-bit little-endian files only (x86-64 and arm64, what the user stacks walk).
 *
 * The file is the target's executable as the kernel holds it (/proc/<pid>/exe), which
 * may sit on a file system that hangs (a dead NFS mount): every read is raced against
 * the caller's deadline, and while a read that lost the race has not returned, no new
 * file is opened (a read stuck in the kernel holds one of libuv's four pool threads,
 * which every fs call of this process shares). What is read is bounded in bytes too.
 */
import * as fs from 'node:fs';
import { inflateSync } from 'node:zlib';
import { IokitSnapError } from '../errors';

export const SHT_SYMTAB = 2;
export const SHT_NOBITS = 8;
const SHF_COMPRESSED = 0x800;
const ELFCOMPRESS_ZLIB = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;

/** Reads from one program file: how long they may take in all, and how many bytes. */
export class ReadBudget {
  constructor(
    /** performance.now() after which no read is started, and a read not back fails. */
    readonly deadline: number,
    public bytesLeft: number,
  ) {}

  msLeft(): number {
    return this.deadline - performance.now();
  }
}

/** Reads that lost their race with a deadline and are still in the kernel (see the header). */
let stuckReads = 0;

/** Races `operation` with the budget's deadline; a loser is counted until it settles. */
async function bounded<T>(operation: Promise<T>, budget: ReadBudget, what: string): Promise<T> {
  const left = budget.msLeft();
  let lost = false;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        lost = true;
        stuckReads++;
        operation.then(
          () => stuckReads--,
          () => stuckReads--,
        );
        reject(new IokitSnapError('ETIMEDOUT', `${what} did not return in time: the file system that holds the program may hang`));
      },
      Math.max(0, left),
    );
  });
  try {
    return await Promise.race([operation, late]);
  } finally {
    clearTimeout(timer);
    if (!lost) void late.catch(() => undefined);
  }
}

export interface ElfSection {
  name: string;
  type: number;
  flags: number;
  /** Virtual address (0 for sections not loaded). */
  addr: number;
  offset: number;
  size: number;
  /** sh_link: for a symbol table, the index of its string table. */
  link: number;
}

export interface ElfSymbol {
  name: string;
  value: number;
  size: number;
  /** STT_* (low 4 bits of st_info): 1 object, 2 func. */
  type: number;
}

/** A u64 at `offset` as a number (exact below 2^53: every user-space address on x86-64 and arm64). */
export function u64(buffer: Buffer, offset: number): number {
  return buffer.readUInt32LE(offset + 4) * 0x1_0000_0000 + buffer.readUInt32LE(offset);
}

export class ElfFile {
  private constructor(
    private readonly handle: fs.promises.FileHandle,
    readonly path: string,
    /** What reads of this file may use now (replaced by each caller that keeps the file open). */
    public budget: ReadBudget,
    readonly type: number,
    readonly machine: number,
    readonly entry: number,
    readonly sections: ElfSection[],
    readonly fileSize: number,
  ) {}

  /**
   * Opens `path` and reads its headers. Rejects with ENOEXEC (not a 64-bit little-endian
   * ELF file), ETIMEDOUT (the budget ran out, or an earlier read is stuck), or the
   * open's own error.
   */
  static async open(path: string, budget: ReadBudget): Promise<ElfFile> {
    if (stuckReads > 0) {
      throw new IokitSnapError('ETIMEDOUT', `an earlier read of a program file has not returned (its file system may hang); ${path} is not read until it does`);
    }
    const handle = await bounded(fs.promises.open(path, 'r'), budget, `opening ${path}`);
    try {
      const stat = await bounded(handle.stat(), budget, `stat of ${path}`);
      const head = await readAt(handle, path, budget, 0, 64);
      if (head.length < 64 || head.readUInt32BE(0) !== 0x7f454c46) throw new IokitSnapError('ENOTSUP', `${path} is not an ELF file`);
      if (head[4] !== 2 || head[5] !== 1) throw new IokitSnapError('ENOTSUP', `${path} is not a 64-bit little-endian ELF file`);
      const type = head.readUInt16LE(16);
      const machine = head.readUInt16LE(18);
      const entry = u64(head, 24);
      const shoff = u64(head, 40);
      const shentsize = head.readUInt16LE(58);
      const shnum = head.readUInt16LE(60);
      const shstrndx = head.readUInt16LE(62);
      if (shentsize !== 64 || shnum === 0 || shnum > 65280 || shstrndx >= shnum || shoff + shnum * 64 > stat.size) {
        throw new IokitSnapError('ENOTSUP', `${path} has no readable section headers`);
      }
      const table = await readAt(handle, path, budget, shoff, shnum * 64);
      const raw = [];
      for (let i = 0; i < shnum; i++) {
        const at = i * 64;
        raw.push({
          nameOffset: table.readUInt32LE(at),
          type: table.readUInt32LE(at + 4),
          flags: u64(table, at + 8),
          addr: u64(table, at + 16),
          offset: u64(table, at + 24),
          size: u64(table, at + 32),
          link: table.readUInt32LE(at + 40),
        });
      }
      const names = raw[shstrndx];
      if (names.offset + names.size > stat.size || names.size > 1 << 20) throw new IokitSnapError('ENOTSUP', `${path} has no readable section names`);
      const strings = await readAt(handle, path, budget, names.offset, names.size);
      const sections = raw.map(({ nameOffset, ...rest }) => ({ name: cString(strings, nameOffset), ...rest }));
      return new ElfFile(handle, path, budget, type, machine, entry, sections, stat.size);
    } catch (error) {
      void handle.close().catch(() => undefined);
      throw error;
    }
  }

  close(): void {
    void this.handle.close().catch(() => undefined);
  }

  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** `length` bytes at file offset `offset` (fewer at the end of the file). */
  read(offset: number, length: number): Promise<Buffer> {
    return readAt(this.handle, this.path, this.budget, offset, length);
  }

  /** A section's bytes, inflated when SHF_COMPRESSED (zlib) or a Go `.zdebug_*` ("ZLIB" + size); at most `maxBytes` either way. */
  async sectionBytes(section: ElfSection, maxBytes: number): Promise<Buffer> {
    if (section.type === SHT_NOBITS) return Buffer.alloc(0);
    if (section.size > maxBytes) throw new IokitSnapError('ENOTSUP', `${this.path}: section ${section.name} is ${section.size} bytes, more than the ${maxBytes} read`);
    const bytes = await this.read(section.offset, section.size);
    if ((section.flags & SHF_COMPRESSED) !== 0) {
      if (bytes.length < 24 || bytes.readUInt32LE(0) !== ELFCOMPRESS_ZLIB) throw new IokitSnapError('ENOTSUP', `${this.path}: section ${section.name} is compressed other than with zlib`);
      return inflate(bytes.subarray(24), u64(bytes, 8), maxBytes, this.path, section.name);
    }
    if (section.name.startsWith('.zdebug_') && bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'ZLIB') {
      return inflate(bytes.subarray(12), bytes.readUInt32BE(4) * 0x1_0000_0000 + bytes.readUInt32BE(8), maxBytes, this.path, section.name);
    }
    return bytes;
  }

  /** The file offset of virtual address `addr`, from the section that holds it (not NOBITS); null when none does. */
  fileOffsetOf(addr: number): number | null {
    for (const s of this.sections) {
      if (s.addr !== 0 && s.type !== SHT_NOBITS && addr >= s.addr && addr < s.addr + s.size) return s.offset + (addr - s.addr);
    }
    return null;
  }

  /** The section whose addresses hold `addr` (NOBITS included). */
  sectionAt(addr: number): ElfSection | undefined {
    return this.sections.find((s) => s.addr !== 0 && addr >= s.addr && addr < s.addr + s.size);
  }

  /** The symbols of .symtab whose names `want` accepts (null when the file has no .symtab: stripped). */
  async symbols(want: (name: string) => boolean, maxBytes: number): Promise<ElfSymbol[] | null> {
    const table = this.sections.find((s) => s.type === SHT_SYMTAB);
    if (table === undefined) return null;
    const strtab = this.sections[table.link];
    if (strtab === undefined) return null;
    const [entries, strings] = await Promise.all([this.sectionBytes(table, maxBytes), this.sectionBytes(strtab, maxBytes)]);
    const out: ElfSymbol[] = [];
    for (let at = 0; at + 24 <= entries.length; at += 24) {
      const name = cString(strings, entries.readUInt32LE(at));
      if (name === '' || !want(name)) continue;
      out.push({ name, value: u64(entries, at + 8), size: u64(entries, at + 16), type: entries[at + 4] & 0xf });
    }
    return out;
  }
}

async function readAt(handle: fs.promises.FileHandle, path: string, budget: ReadBudget, offset: number, length: number): Promise<Buffer> {
  if (length > budget.bytesLeft) throw new IokitSnapError('ENOTSUP', `reading ${path} would pass the bytes allowed for one program (${length} more asked)`);
  budget.bytesLeft -= length;
  const buffer = Buffer.allocUnsafe(length);
  const { bytesRead } = await bounded(handle.read(buffer, 0, length, offset), budget, `reading ${path}`);
  return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
}

function inflate(bytes: Buffer, size: number, maxBytes: number, path: string, name: string): Buffer {
  if (size > maxBytes) throw new IokitSnapError('ENOTSUP', `${path}: section ${name} inflates to ${size} bytes, more than the ${maxBytes} read`);
  try {
    return inflateSync(bytes, { maxOutputLength: Math.max(1, size) });
  } catch (error) {
    throw new IokitSnapError('ENOTSUP', `${path}: section ${name} does not inflate: ${(error as Error).message}`);
  }
}

export function cString(buffer: Buffer, offset: number): string {
  if (offset >= buffer.length) return '';
  const end = buffer.indexOf(0, offset);
  return buffer.toString('latin1', offset, end < 0 ? buffer.length : end);
}
