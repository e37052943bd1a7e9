/**
 * Go's pclntab: the table every Go binary keeps (stripped or not) so the runtime can
 * name its own functions, in the formats of Go 1.18 and later (magic 0xfffffff0, and
 * 0xfffffff1 from 1.20). Gives a pc's function, and the functions inlined at that pc
 * (the inline tree, FUNCDATA_InlTree indexed by PCDATA_InlTreeIndex), innermost first,
 * as runtime.Stack prints them: `sync.(*Mutex).Lock` inlined into `main.worker` is a
 * frame of its own.
 *
 * The file is read lazily, in chunks kept in a small cache, through the reader the
 * caller gives (the table of a large program is tens of MB; a lookup reads a few KB).
 * Layouts (runtime/symtab.go, runtime/runtime2.go `_func`, `inlinedCall`):
 *   pcHeader   magic u32, pad u8 ×2, minLC u8, ptrSize u8, nfunc int, nfiles uint,
 *              textStart, funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset
 *   functab    [nfunc+1]{ entryoff u32, funcoff u32 } at pclnOffset
 *   _func      entryoff u32, nameoff i32, args i32, deferreturn u32, pcsp u32, pcfile u32,
 *              pcln u32, npcdata u32, cuOffset u32, [startLine i32 from 1.20], funcID u8,
 *              flag u8, pad u8, nfuncdata u8, then pcdata [npcdata]u32, funcdata [nfuncdata]u32
 *   inlinedCall 1.18–1.19: parent i16, funcID u8, pad u8, file i32, line i32, func_ i32 (name), parentPc i32
 *               1.20+:     funcID u8, pad ×3, nameOff i32, parentPc i32, startLine i32
 */

const PCDATA_InlTreeIndex = 2;
const FUNCDATA_InlTree = 3;

/** Reads `length` bytes at virtual address `addr` of the binary (a slice of its file). */
export type AddressReader = (addr: number, length: number) => Promise<Buffer>;

export interface PcName {
  /** The function, as Go names it ("sync.(*Mutex).lockSlow"). */
  name: string;
  /** pc − the entry of the physical function (for an inlined frame: of the function it was inlined into). */
  offset: number;
  /** Whether this frame is a call inlined at the pc (no frame of its own on the stack). */
  inlined: boolean;
}

interface FuncInfo {
  entry: number;
  name: string;
  /** The pctab offset of the inline-tree index table, 0 when none. */
  inlIndexTable: number;
  /** The inline tree's address, 0 when none. */
  inlTree: number;
}

export class GoPclntab {
  private readonly funcs = new Map<number, FuncInfo | null>();
  private readonly names = new Map<number, string>();

  private constructor(
    private readonly read: AddressReader,
    readonly base: number,
    readonly version: '1.18' | '1.20',
    private readonly quantum: number,
    private readonly nfunc: number,
    private readonly textStart: number,
    private readonly funcnametab: number,
    private readonly pctab: number,
    private readonly pclntable: number,
    /** Entry offsets of every function (functab), for the binary search. */
    private readonly entries: Uint32Array,
    private readonly funcOffsets: Uint32Array,
    /** moduledata.gofunc: the base of funcdata offsets; 0 when unknown (no inline expansion). */
    private readonly gofunc: number,
  ) {}

  /**
   * Reads the header and the function table at `base` (the pclntab's address). null when
   * the magic is not one of the supported formats (Go older than 1.18).
   * `textStart` replaces the header's when it reads 0 (an unrelocated PIE header).
   */
  static async open(read: AddressReader, base: number, gofunc: number, textStartFallback: number): Promise<GoPclntab | null> {
    const header = await read(base, 72);
    if (header.length < 72) return null;
    const magic = header.readUInt32LE(0);
    if ((magic !== 0xfffffff0 && magic !== 0xfffffff1) || header[4] !== 0 || header[5] !== 0 || header[7] !== 8) return null;
    const quantum = header[6];
    const nfunc = Number(header.readBigUInt64LE(8));
    if (nfunc <= 0 || nfunc > 4_000_000) return null;
    const textStart = Number(header.readBigUInt64LE(24)) || textStartFallback;
    const at = (i: number): number => base + Number(header.readBigUInt64LE(32 + i * 8));
    const funcnametab = at(0);
    const pctab = at(3);
    const pclntable = at(4);
    const table = await read(pclntable, (nfunc + 1) * 8);
    if (table.length < (nfunc + 1) * 8) return null;
    const entries = new Uint32Array(nfunc + 1);
    const funcOffsets = new Uint32Array(nfunc + 1);
    for (let i = 0; i <= nfunc; i++) {
      entries[i] = table.readUInt32LE(i * 8);
      funcOffsets[i] = table.readUInt32LE(i * 8 + 4);
    }
    return new GoPclntab(read, base, magic === 0xfffffff0 ? '1.18' : '1.20', quantum, nfunc, textStart, funcnametab, pctab, pclntable, entries, funcOffsets, gofunc);
  }

  /** Whether `pc` is in a Go function of this table. */
  covers(pc: number): boolean {
    const off = pc - this.textStart;
    return off >= this.entries[0] && off < this.entries[this.nfunc];
  }

  /**
   * The frames at `pc`, innermost first: the functions inlined there, then the physical
   * function. `returnAddress`: pc is where a call returns to (every frame but a trap's),
   * so the call instruction is looked up (pc − 1), as the runtime's own traceback does.
   * Empty when pc is in no Go function.
   */
  async frames(pc: number, returnAddress: boolean): Promise<PcName[]> {
    const index = this.funcIndex(pc);
    if (index < 0) return [];
    const func = await this.func(index);
    if (func === null) return [];
    const target = returnAddress && pc > func.entry ? pc - 1 : pc;
    const out: PcName[] = [];
    if (func.inlIndexTable !== 0 && func.inlTree !== 0) {
      let ix = await this.pcValue(func.inlIndexTable, func.entry, target);
      // Each inlined call names its function and where its parent called it (parentPc);
      // the walk goes outward until the index is -1: the physical function.
      for (let guard = 0; ix >= 0 && guard < 64; guard++) {
        const size = this.version === '1.18' ? 20 : 16;
        const entry = await this.read(func.inlTree + ix * size, size);
        if (entry.length < size) break;
        const nameOff = this.version === '1.18' ? entry.readInt32LE(12) : entry.readInt32LE(4);
        const parentPc = this.version === '1.18' ? entry.readInt32LE(16) : entry.readInt32LE(8);
        out.push({ name: await this.name(nameOff), offset: pc - func.entry, inlined: true });
        ix = await this.pcValue(func.inlIndexTable, func.entry, func.entry + parentPc);
      }
    }
    out.push({ name: func.name, offset: pc - func.entry, inlined: false });
    return out;
  }

  private funcIndex(pc: number): number {
    const off = pc - this.textStart;
    if (off < this.entries[0] || off >= this.entries[this.nfunc]) return -1;
    let lo = 0;
    let hi = this.nfunc; // entries[hi] > off
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid] <= off) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  private async func(index: number): Promise<FuncInfo | null> {
    const known = this.funcs.get(index);
    if (known !== undefined) return known;
    const at = this.pclntable + this.funcOffsets[index];
    const fixed = this.version === '1.18' ? 40 : 44;
    const head = await this.read(at, fixed);
    let info: FuncInfo | null = null;
    if (head.length === fixed) {
      const npcdata = head.readUInt32LE(28);
      const nfuncdata = head[fixed - 1];
      const tables = npcdata <= 64 && nfuncdata <= 64 ? await this.read(at + fixed, (npcdata + nfuncdata) * 4) : Buffer.alloc(0);
      const pcdata = (i: number): number => (i < npcdata && tables.length >= (i + 1) * 4 ? tables.readUInt32LE(i * 4) : 0);
      const funcdata = (i: number): number => {
        if (i >= nfuncdata || tables.length < (npcdata + i + 1) * 4) return 0;
        const off = tables.readUInt32LE((npcdata + i) * 4);
        return off === 0xffffffff || this.gofunc === 0 ? 0 : this.gofunc + off;
      };
      info = {
        entry: this.textStart + head.readUInt32LE(0),
        name: await this.name(head.readInt32LE(4)),
        inlIndexTable: pcdata(PCDATA_InlTreeIndex),
        inlTree: funcdata(FUNCDATA_InlTree),
      };
    }
    this.funcs.set(index, info);
    return info;
  }

  private async name(offset: number): Promise<string> {
    const known = this.names.get(offset);
    if (known !== undefined) return known;
    let text = '';
    for (let at = this.funcnametab + offset, guard = 0; guard < 16; guard++, at += 256) {
      const chunk = await this.read(at, 256);
      const end = chunk.indexOf(0);
      text += chunk.toString('utf8', 0, end < 0 ? chunk.length : end);
      if (end >= 0 || chunk.length < 256) break;
    }
    this.names.set(offset, text);
    return text;
  }

  /** The value of the pc-value table at pctab + `table` for `target` (runtime.pcvalue); -1 when past its end. */
  private async pcValue(table: number, entry: number, target: number): Promise<number> {
    let at = this.pctab + table;
    let chunk = await this.read(at, 512);
    let i = 0;
    const byte = async (): Promise<number> => {
      if (i >= chunk.length) {
        at += chunk.length;
        chunk = await this.read(at, 512);
        i = 0;
        if (chunk.length === 0) throw new RangeError('pc-value table past the end of the file');
      }
      return chunk[i++];
    };
    const varint = async (): Promise<number> => {
      let result = 0;
      for (let shift = 0; shift < 35; shift += 7) {
        const b = await byte();
        result += (b & 0x7f) * 2 ** shift;
        if ((b & 0x80) === 0) return result;
      }
      throw new RangeError('pc-value varint too long');
    };
    let value = -1;
    let pc = entry;
    for (let first = true, guard = 0; guard < 100_000; first = false, guard++) {
      const uvdelta = await varint();
      if (uvdelta === 0 && !first) return -1;
      const delta = uvdelta % 2 === 1 ? -((uvdelta + 1) / 2) : uvdelta / 2;
      pc += (await varint()) * this.quantum;
      value += delta;
      if (target < pc) return value;
    }
    return -1;
  }
}
