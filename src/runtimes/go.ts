/**
 * The goroutines of a live Go process, read from its memory (readMemory: process_vm_readv,
 * the process is never stopped), as delve and gops do.
 *
 * Why: a goroutine blocked on a sync.Mutex, a channel or the netpoller is parked by the
 * Go scheduler (gopark): its own stack is saved in its `g` and is on no thread's stack,
 * and the thread (M) that ran it goes back to the scheduler (findRunnable → stopm →
 * futex). From the threads alone a deadlocked Go program and an idle one look the same.
 *
 * How (go-binary.ts says where each fact comes from):
 *   1. /proc/<pid>/exe (the kernel's reference to the executable, not a path the target
 *      controls): is it Go, which version, runtime.allgs, the layout of runtime.g;
 *   2. the load bias of a PIE: AT_ENTRY of /proc/<pid>/auxv − e_entry (auxv is the
 *      kernel's saved copy, read without the target's mmap lock, unlike /proc/<pid>/maps);
 *   3. runtime.allgs (slice header) and runtime.allglen, then every g's fields, then the
 *      saved frames: from g.sched.pc and g.sched.bp, along Go's frame pointers
 *      ([bp] = the caller's bp, [bp+8] = the return address), one read per level for all
 *      goroutines at once; pcs named by the pclntab, inlined calls included.
 * The runtime changes these structures while they are read: a goroutine read mid-change
 * can show a stale status or a frame that no longer is; a second read confirms a wait.
 */
import * as fs from 'node:fs';
import { IokitSnapError, toIokitSnapError } from '../errors';
import { checkDuration, checkPid, readOptions } from '../options';
import type { Frame, GoroutineOptions, GoroutineSample, GoroutineSampleResult, GoroutineStatus, Limitation } from '../types';
import { ReadBudget, u64 } from './elf-file';
import { goBinary, type GLayout, type GoBinary, type StrippedFacts } from './go-binary';
import { MAX_READ_BYTES, MAX_READ_RANGES, readPacked } from './memory';

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_MAX_GOROUTINES = 20000;
const DEFAULT_MAX_FRAMES = 16;
/** Bytes of the target's memory one sample may read, all calls together. */
const MAX_SAMPLE_BYTES = 64 * 1024 * 1024;
const G_SCAN = 0x1000;
/** Above every user-space address of x86-64 (47 bits, 56 with 5-level paging) and arm64 (52 bits). */
const MAX_USER_ADDRESS = 2 ** 57;
const STATUS_WAITING = 4;

const KNOWN_STATUS = new Set<GoroutineStatus>(['idle', 'runnable', 'running', 'syscall', 'waiting', 'moribund', 'dead', 'enqueue', 'copystack', 'preempted']);

interface RawG {
  address: number;
  goid: number;
  statusValue: number;
  status: GoroutineStatus;
  waitReason: number;
  waitSince: number;
  stackLo: number;
  stackHi: number;
  m: number;
  schedPc: number;
  schedSp: number;
  schedBp: number;
  syscallPc: number;
  gopc: number;
  startpc: number;
}

/** What the last sampleGoroutines() read of the target: bytes and readMemory calls (for bench/goroutines.js). */
export const lastReadStats = { bytes: 0, calls: 0, goroutines: 0 };

/** Ranges of one length read together (readSame): where each one's bytes are. */
class Blocks {
  constructor(
    private readonly chunks: { bytes: Buffer; read: Uint8Array; first: number }[],
    private readonly valid: Uint8Array,
    readonly length: number,
    private readonly chunkSize: number,
  ) {}
  /** The buffer holding range i, or null when it was not read whole. */
  buffer(i: number): Buffer | null {
    if (this.valid[i] === 0) return null;
    const chunk = this.chunks[Math.floor(i / this.chunkSize)];
    return chunk.read[i - chunk.first] === 1 ? chunk.bytes : null;
  }
  /** Where range i starts in buffer(i). */
  offset(i: number): number {
    return (i % this.chunkSize) * this.length;
  }
  get(i: number): Buffer | null {
    const bytes = this.buffer(i);
    return bytes === null ? null : bytes.subarray(this.offset(i), this.offset(i) + this.length);
  }
}

const validAddress = (address: number, length: number): boolean => Number.isSafeInteger(address) && address > 0 && address + length <= MAX_USER_ADDRESS;

/** Reads memory within a sample's deadline and byte budget; the first failure ends the sample's reads. */
class SampleMemory {
  bytes = 0;
  calls = 0;
  constructor(
    readonly pid: number,
    readonly deadline: number,
  ) {}

  /** Per range its bytes, or null where unreadable; an address no user space has (a garbage pointer) is null without a read. */
  async read(ranges: { address: number; length: number }[]): Promise<(Buffer | null)[]> {
    const out: (Buffer | null)[] = [];
    for (const range of ranges) {
      if (range.length > MAX_READ_BYTES) throw new IokitSnapError('EINVAL', 'a single memory range is larger than one read');
    }
    let start = 0;
    while (start < ranges.length) {
      let end = start;
      let size = 0;
      while (end < ranges.length && end - start < MAX_READ_RANGES && size + ranges[end].length <= MAX_READ_BYTES) size += ranges[end++].length;
      const pairs = new BigUint64Array((end - start) * 2);
      for (let i = start; i < end; i++) {
        const ok = validAddress(ranges[i].address, ranges[i].length);
        pairs[2 * (i - start)] = ok ? BigInt(ranges[i].address) : 0n;
        pairs[2 * (i - start) + 1] = ok ? BigInt(ranges[i].length) : 0n;
      }
      const raw = await this.call(pairs, size);
      let offset = 0;
      for (let i = start; i < end; i++) {
        const length = validAddress(ranges[i].address, ranges[i].length) ? ranges[i].length : 0;
        out.push(raw.read[i - start] === 1 && (length > 0 || ranges[i].length === 0) ? raw.bytes.subarray(offset, offset + length) : null);
        offset += length;
      }
      start = end;
    }
    return out;
  }

  /** `length` bytes at each of `addresses`, packed: what the bulk reads (every g, every frame level) use. */
  async readSame(addresses: number[], length: number): Promise<Blocks> {
    const chunkSize = Math.max(1, Math.min(MAX_READ_RANGES, Math.floor(MAX_READ_BYTES / Math.max(1, length))));
    const valid = new Uint8Array(addresses.length);
    const chunks: { bytes: Buffer; read: Uint8Array; first: number }[] = [];
    for (let first = 0; first < addresses.length; first += chunkSize) {
      const count = Math.min(chunkSize, addresses.length - first);
      const pairs = new BigUint64Array(count * 2);
      const big = BigInt(length);
      for (let k = 0; k < count; k++) {
        const address = addresses[first + k];
        if (validAddress(address, length)) {
          valid[first + k] = 1;
          pairs[2 * k] = BigInt(address);
        } else {
          pairs[2 * k] = 4096n; // never mapped; the range is null whatever it reads
        }
        pairs[2 * k + 1] = big;
      }
      const raw = await this.call(pairs, count * length);
      chunks.push({ bytes: raw.bytes, read: raw.read, first });
    }
    return new Blocks(chunks, valid, length, chunkSize);
  }

  private async call(pairs: BigUint64Array, size: number): Promise<{ bytes: Buffer; read: Buffer }> {
    if (this.bytes + size > MAX_SAMPLE_BYTES) throw new IokitSnapError('EIO', `reading goroutines would read more than ${MAX_SAMPLE_BYTES} bytes of the process`);
    const left = this.deadline - performance.now();
    if (left <= 0) throw new IokitSnapError('ETIMEDOUT', `reading the goroutines of pid ${this.pid} ran out of time`);
    this.bytes += size;
    this.calls++;
    return readPacked(this.pid, pairs, Math.max(1, Math.ceil(left)));
  }
}

/** The load bias of the executable: AT_ENTRY (auxv type 9) − e_entry; 0 for a fixed-address (ET_EXEC) program. */
async function loadBias(procRoot: string, pid: number, binary: GoBinary, deadline: number): Promise<number> {
  if (!binary.pie) return 0;
  let timer: NodeJS.Timeout | undefined;
  const auxv = await Promise.race([
    fs.promises.readFile(`${procRoot}/${pid}/auxv`),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new IokitSnapError('ETIMEDOUT', `/proc/${pid}/auxv did not return in time`)), Math.max(0, deadline - performance.now()));
    }),
  ]).finally(() => clearTimeout(timer));
  for (let at = 0; at + 16 <= auxv.length; at += 16) {
    if (u64(auxv, at) === 9) return u64(auxv, at + 8) - binary.entry;
  }
  throw new IokitSnapError('EIO', `/proc/${pid}/auxv has no AT_ENTRY`);
}

function statusOf(binary: GoBinary, value: number): GoroutineStatus {
  const name = binary.statusNames.get(value & ~G_SCAN);
  return name !== undefined && KNOWN_STATUS.has(name as GoroutineStatus) ? (name as GoroutineStatus) : 'unknown';
}

function parseG(layout: GLayout, binary: GoBinary, address: number, b: Buffer, at: number): RawG {
  const statusValue = b.readUInt32LE(at + layout.atomicstatus);
  return {
    address,
    goid: u64(b, at + layout.goid),
    statusValue,
    status: statusOf(binary, statusValue),
    waitReason: b[at + layout.waitreason],
    waitSince: u64(b, at + layout.waitsince),
    stackLo: u64(b, at + layout.stackLo),
    stackHi: u64(b, at + layout.stackHi),
    m: u64(b, at + layout.m),
    schedPc: u64(b, at + layout.schedPc),
    schedSp: u64(b, at + layout.schedSp),
    schedBp: u64(b, at + layout.schedBp),
    syscallPc: u64(b, at + layout.syscallPc),
    gopc: u64(b, at + layout.gopc),
    startpc: u64(b, at + layout.startpc),
  };
}

/**
 * Offsets at the start of runtime.g that have not moved since Go 1.5 (stack, stackguard0,
 * stackguard1, _panic, _defer, m, then sched: a gobuf that starts sp, pc, g), and
 * runtime.m.procid (after g0 and morebuf); checked in the DWARF of Go 1.19 (built here)
 * and Go 1.24 (Debian's docker CLI). The rest of gobuf (ctxt, ret, lr, bp through 1.24;
 * ret is gone in later versions) is inferred: bp is the word that lies between sp and
 * the stack's top in every parked goroutine, and syscallsp, syscallpc follow sched.
 */
const FIXED_PREFIX = { stackLo: 0, stackHi: 8, m: 48, schedSp: 56, schedPc: 64, schedG: 72, mProcid: 72 };
/** Where gobuf.bp may be: with ret (Go ≤ 1.24 at least), and without. */
const SCHED_BP_CANDIDATES = [104, 96];
const INFER_READ = 512;
const INFER_GS = 256;

/**
 * A stripped binary (no .symtab, or no DWARF): where allgs is, and the layout of
 * runtime.g past its fixed prefix, found in the process and checked, once per binary.
 *
 * allgs: a slice header { ptr, len, cap } in .bss whose elements point at records that
 * point back at themselves (g.sched.g == g, set for every goroutine by newproc).
 * Then, over the first goroutines:
 *   atomicstatus: the first 8-aligned word after syscallpc whose low half is a status
 *     (0–9, with _Gscan) in every g, and followed by goid (atomicstatus, stackLock u32,
 *     then goid): 1 for allgs[0] (the main goroutine), distinct and positive in all;
 *   waitsince, waitreason: goid + 16, goid + 24 (goid, schedlink, waitsince, waitreason,
 *     as in Go 1.19 through 1.24), the reason below the table's size in every g;
 *   gopc, startpc: the first word past those where every live g's gopc is in a Go function
 *     and its startpc (gopc + 16: gopc, ancestors, startpc) is a function's first byte.
 * What does not check out is a limit, never a guess.
 */
async function findStripped(binary: GoBinary, memory: SampleMemory, bias: number): Promise<StrippedFacts> {
  const facts: StrippedFacts = binary.stripped ?? { allgs: binary.allgs, layout: binary.layout, failure: null };
  binary.stripped = facts;
  if (facts.failure !== null || (facts.allgs !== null && facts.layout !== null)) return facts;
  const pclntab = binary.pclntab!;
  let gs: { address: number; bytes: Buffer }[] = [];
  let arrayLen = 0;
  if (facts.allgs === null) {
    const bss = binary.bss;
    if (bss === null || bss.size > 32 * 1024 * 1024) return fail(facts, 'the program is stripped (built with -ldflags=-s) and has no .bss to find runtime.allgs in');
    const ranges = [];
    for (let at = 0; at < bss.size; at += 1024 * 1024) ranges.push({ address: bss.addr + bias + at, length: Math.min(1024 * 1024, bss.size - at) });
    const parts = await memory.read(ranges);
    if (parts.some((p) => p === null)) return fail(facts, '.bss of the process is not readable');
    const words = Buffer.concat(parts as Buffer[]);
    const candidates: { at: number; ptr: number; len: number }[] = [];
    for (let at = 0; at + 24 <= words.length && candidates.length < 8192; at += 8) {
      const ptr = u64(words, at);
      const len = u64(words, at + 8);
      const cap = u64(words, at + 16);
      if (ptr !== 0 && ptr % 8 === 0 && len >= 1 && len <= cap && cap <= 10_000_000) candidates.push({ at, ptr, len });
    }
    const firsts = await memory.read(candidates.map((c) => ({ address: c.ptr, length: 8 })));
    const gAddresses = firsts.map((f) => (f === null ? 0 : u64(f, 0)));
    const heads = await memory.readSame(gAddresses, 128);
    let best: { at: number; ptr: number; len: number } | null = null;
    candidates.forEach((c, i) => {
      const head = heads.get(i);
      if (head === null || gAddresses[i] === 0 || !looksLikeG(head, gAddresses[i])) return;
      if (best === null || c.len > best.len) best = c;
    });
    if (best === null) return fail(facts, 'the program is stripped (built with -ldflags=-s) and no slice of goroutine records (runtime.allgs) was found in its .bss');
    const chosen = best as { at: number; ptr: number; len: number };
    facts.allgs = bss.addr + chosen.at;
    arrayLen = chosen.len;
  }
  if (facts.layout === null) {
    if (arrayLen === 0) {
      const [header] = await memory.read([{ address: facts.allgs + bias, length: 24 }]);
      if (header === null) return fail(facts, 'runtime.allgs is not readable');
      arrayLen = u64(header, 8);
    }
    const [header] = await memory.read([{ address: facts.allgs + bias, length: 24 }]);
    const n = Math.min(arrayLen, INFER_GS);
    const [array] = header === null ? [null] : await memory.read([{ address: u64(header, 0), length: n * 8 }]);
    if (array === null) return fail(facts, 'the array of runtime.allgs is not readable');
    const addresses = Array.from({ length: n }, (_, i) => u64(array, i * 8));
    const blocks = await memory.readSame(addresses, INFER_READ);
    gs = addresses.map((address, i) => ({ address, bytes: blocks.get(i)! })).filter((g) => g.bytes !== null && looksLikeG(g.bytes, g.address));
    if (gs.length === 0 || gs[0].address !== addresses[0]) return fail(facts, 'the goroutine records of runtime.allgs do not check out');
    facts.layout = await inferLayout(gs, pclntab, bias, binary);
    if (facts.layout === null) {
      return fail(facts, `the program has no DWARF (built with -ldflags=-w), and the layout of runtime.g in ${binary.version ?? 'this Go'} could not be inferred and checked`);
    }
  }
  return facts;
}

function fail(facts: StrippedFacts, reason: string): StrippedFacts {
  facts.failure = reason;
  return facts;
}

function looksLikeG(head: Buffer, address: number): boolean {
  const lo = u64(head, FIXED_PREFIX.stackLo);
  const hi = u64(head, FIXED_PREFIX.stackHi);
  return u64(head, FIXED_PREFIX.schedG) === address && (lo === 0 ? hi === 0 : lo < hi && hi - lo <= 1 << 30);
}

async function inferLayout(gs: { address: number; bytes: Buffer }[], pclntab: NonNullable<GoBinary['pclntab']>, bias: number, binary: GoBinary): Promise<GLayout | null> {
  const reasons = binary.waitReasons?.length ?? 64;
  let goid = -1;
  for (let status = 128; status + 32 <= INFER_READ && goid < 0; status += 8) {
    const ok = gs.every((g) => (g.bytes.readUInt32LE(status) & ~G_SCAN) <= 9);
    if (!ok) continue;
    const ids = gs.map((g) => u64(g.bytes, status + 8));
    if (ids[0] !== 1 || new Set(ids).size !== ids.length || ids.some((id) => id < 1 || id > 2 ** 40)) continue;
    if (!gs.every((g) => g.bytes[status + 8 + 24] < reasons)) continue;
    goid = status + 8;
  }
  if (goid < 0) return null;
  // Dead and idle records keep no start function (a dead g's are zeroed).
  const live = gs.filter((g) => {
    const status = g.bytes.readUInt32LE(goid - 8) & ~G_SCAN;
    return status !== 0 && status !== 6;
  });
  if (live.length === 0) return null;
  let gopc = -1;
  for (let at = goid + 32; at + 24 <= INFER_READ && gopc < 0; at += 8) {
    let ok = true;
    for (const g of live) {
      const pc = u64(g.bytes, at);
      const start = u64(g.bytes, at + 16);
      if (pc === 0 || start === 0 || !pclntab.covers(pc - bias) || !pclntab.covers(start - bias)) {
        ok = false;
        break;
      }
      const frames = await pclntab.frames(start - bias, false);
      if (frames.length === 0 || frames[frames.length - 1].offset !== 0) {
        ok = false;
        break;
      }
    }
    if (ok) gopc = at;
  }
  if (gopc < 0) return null;
  const parked = live.filter((g) => (g.bytes.readUInt32LE(goid - 8) & ~G_SCAN) === STATUS_WAITING);
  const schedBp = SCHED_BP_CANDIDATES.find((at) =>
    parked.length > 0 &&
    parked.every((g) => {
      const bp = u64(g.bytes, at);
      return bp >= u64(g.bytes, FIXED_PREFIX.schedSp) && bp < u64(g.bytes, FIXED_PREFIX.stackHi);
    }),
  );
  if (schedBp === undefined) return null;
  const layout: GLayout = {
    ...FIXED_PREFIX,
    schedBp,
    syscallSp: schedBp + 8,
    syscallPc: schedBp + 16,
    span: 0,
    atomicstatus: goid - 8,
    goid,
    waitsince: goid + 16,
    waitreason: goid + 24,
    gopc,
    startpc: gopc + 16,
  };
  layout.span = Math.max(gopc + 24, goid + 32);
  return layout;
}

/** Wait-reason strings from runtime.waitReasonStrings ([N]string in the target's memory), once per binary. */
async function waitReasonStrings(binary: GoBinary, memory: SampleMemory, bias: number): Promise<string[] | null> {
  if (binary.waitReasons !== undefined) return binary.waitReasons;
  const table = binary.waitReasonStrings;
  if (table === null || table.count > 256) return null;
  const [headers] = await memory.read([{ address: table.addr + bias, length: table.count * 16 }]);
  if (headers === null) return null;
  const ranges = [];
  for (let i = 0; i < table.count; i++) ranges.push({ address: u64(headers, i * 16), length: Math.min(u64(headers, i * 16 + 8), 128) });
  const texts = await memory.read(ranges.map((r) => (r.length === 0 ? { address: 0, length: 0 } : r)));
  binary.waitReasons = texts.map((t) => (t === null ? '' : t.toString('utf8')));
  return binary.waitReasons;
}

/**
 * The goroutines of Go process `pid`. `goroutines` is null when the program is not Go
 * (no limit then), or when they cannot be read (a limit with field `goroutines` says why:
 * a stripped binary, EPERM, a read that timed out). Never throws for the target's sake;
 * throws EINVAL for bad options.
 */
export async function sampleGoroutines(pid: number, given: GoroutineOptions = {}): Promise<GoroutineSampleResult> {
  const who = 'sampleGoroutines()';
  checkPid(who, pid);
  const options = readOptions<GoroutineOptions>(who, given, ['maxGoroutines', 'maxFrames', 'timeoutMs', 'procRoot']);
  const timeoutMs = checkDuration(who, 'timeoutMs', options.timeoutMs) ?? DEFAULT_TIMEOUT_MS;
  const maxGoroutines = checkCount(who, 'maxGoroutines', options.maxGoroutines) ?? DEFAULT_MAX_GOROUTINES;
  const maxFrames = checkCount(who, 'maxFrames', options.maxFrames) ?? DEFAULT_MAX_FRAMES;
  const procRoot = options.procRoot ?? '/proc';
  if (typeof procRoot !== 'string') throw new IokitSnapError('EINVAL', `${who}: procRoot must be a string`);
  const deadline = performance.now() + timeoutMs;
  const limits: Limitation[] = [];
  const subject = `pid ${pid}`;
  const limit = (code: string, reason: string, hint?: string): void => {
    limits.push(hint === undefined ? { subject, field: 'goroutines', code, reason } : { subject, field: 'goroutines', code, reason, hint });
  };
  const exe = `${procRoot}/${pid}/exe`;
  let binary: GoBinary | null;
  try {
    ({ binary } = await goBinary(exe, new ReadBudget(deadline, 64 * 1024 * 1024)));
  } catch (error) {
    const e = toIokitSnapError(error);
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || e.code === 'ESRCH') {
      limit('ESRCH', `pid ${pid} is gone (or has no executable: a kernel thread)`);
    } else if ((error as NodeJS.ErrnoException).code === 'EACCES' || e.code === 'EPERM') {
      limit('EPERM', `${exe} is not readable: ${e.message}`, 'Run iokit-snap as the user that owns the process, or as root / with CAP_SYS_PTRACE (sudo).');
    } else {
      limit(e.code, `the program of pid ${pid} could not be read: ${e.message}`);
    }
    return { pid, goVersion: null, goroutines: null, limits };
  }
  if (binary === null) return { pid, goVersion: null, goroutines: null, limits };
  const result: GoroutineSampleResult = { pid, goVersion: binary.version, goroutines: null, limits };
  if (binary.unreadable !== null) {
    limit('ENOTSUP', `goroutines not read: ${binary.unreadable}`, 'Build the program without -ldflags=-s/-w (the default keeps the symbol table and DWARF) to let iokit-snap read its goroutines.');
    return result;
  }
  const memory = new SampleMemory(pid, deadline);
  try {
    const bias = await loadBias(procRoot, pid, binary, deadline);
    let allgs = binary.allgs;
    let layout = binary.layout;
    if (allgs === null || layout === null) {
      const found = await findStripped(binary, memory, bias);
      // findStripped sets failure whenever it leaves allgs or the layout null.
      if (found.failure !== null || found.allgs === null || found.layout === null) {
        limit('ENOTSUP', `goroutines not read: ${found.failure}`, 'Build the program without -ldflags=-s/-w (the default keeps the symbol table and DWARF) to let iokit-snap read its goroutines.');
        return result;
      }
      allgs = found.allgs;
      layout = found.layout;
    }
    const [header, lenWord] = await memory.read([
      { address: allgs + bias, length: 24 },
      ...(binary.allglen !== null ? [{ address: binary.allglen + bias, length: 8 }] : []),
    ]);
    if (header === null) throw new IokitSnapError('EIO', 'runtime.allgs is not readable in the process');
    const array = u64(header, 0);
    // allglen is published after the slice grows; the smaller of the two is all initialised.
    let count = Math.min(u64(header, 8), lenWord !== null && lenWord !== undefined ? u64(lenWord, 0) : Infinity);
    if (!(count >= 0 && count <= 100_000_000)) throw new IokitSnapError('EIO', `runtime.allgs reads as ${count} goroutines: not a Go runtime this reader knows`);
    if (count > maxGoroutines) {
      limit('E2BIG', `${count} goroutines; the first ${maxGoroutines} (by creation) were read (maxGoroutines)`);
      count = maxGoroutines;
    }
    const pointerBlocks = count === 0 ? [] : await memory.read([{ address: array, length: count * 8 }]);
    const pointers = pointerBlocks[0] ?? null;
    if (count > 0 && pointers === null) throw new IokitSnapError('EIO', 'the array of runtime.allgs is not readable');
    const addresses: number[] = [];
    for (let i = 0; i < count; i++) addresses.push(u64(pointers!, i * 8));
    const blocks = await memory.readSame(addresses, layout.span);
    const gs: RawG[] = [];
    let unreadable = 0;
    for (let i = 0; i < addresses.length; i++) {
      const block = blocks.buffer(i);
      if (block === null) {
        unreadable++;
        continue;
      }
      const at = blocks.offset(i);
      const g = parseG(layout, binary, addresses[i], block, at);
      // A record that does not point back at itself (g.sched.g) is not a live g: one
      // freed or reused between reading allgs and reading it.
      if (layout.schedG !== null && u64(block, at + layout.schedG) !== addresses[i] && g.status !== 'dead') {
        unreadable++;
        continue;
      }
      if (g.status !== 'dead') gs.push(g);
    }
    if (unreadable > 0) limit('EIO', `${unreadable} of ${addresses.length} goroutine records were not readable (freed while read?)`);
    const reasons = await waitReasonStrings(binary, memory, bias).catch(() => null);
    // Frames name the program as the target sees it (readlink: the kernel's d_path, no file system call).
    const module = await fs.promises.readlink(exe).catch(() => exe);
    const frames = await walkFrames(gs, memory, binary, bias, maxFrames, module, limits, subject);
    const tids = await threadIds(gs, memory, layout);
    const goroutines: GoroutineSample[] = [];
    const named = new Map<number, Frame[]>();
    const nameOne = async (pc: number): Promise<Frame[]> => {
      let frames = named.get(pc);
      if (frames === undefined) named.set(pc, (frames = await nameFrames(binary!, pc, bias, true, module)));
      return frames;
    };
    for (let i = 0; i < gs.length; i++) {
      const g = gs[i];
      const start = g.startpc !== 0 ? await nameOne(g.startpc + 1) : [];
      const startName = start.at(-1)?.symbol ?? null;
      // The runtime names no creator for the main goroutine (its gopc is in the runtime's start-up).
      const created = g.gopc !== 0 && g.goid !== 1 ? await nameOne(g.gopc) : [];
      const sample: GoroutineSample = {
        goid: g.goid,
        status: g.status,
        waitReason: g.statusValue === STATUS_WAITING && g.waitReason !== 0 ? reasonText(binary, reasons, g.waitReason) : null,
        waitSinceNs: g.statusValue === STATUS_WAITING && g.waitSince > 0 ? g.waitSince : null,
        system: startName !== null && isSystemFunction(startName),
        start: startName,
        createdBy: created.at(-1) ?? null,
        frames: frames[i],
      };
      const tid = tids.get(g.address);
      if (tid !== undefined) sample.tid = tid;
      goroutines.push(sample);
    }
    result.goroutines = goroutines;
    Object.assign(lastReadStats, { bytes: memory.bytes, calls: memory.calls, goroutines: addresses.length });
  } catch (error) {
    const e = toIokitSnapError(error);
    if (e.code === 'ESRCH') limit('ESRCH', `pid ${pid} exited while its goroutines were read`);
    else if (e.code === 'ETIMEDOUT') limit('ETIMEDOUT', `reading the goroutines of pid ${pid} did not finish in ${timeoutMs} ms: ${e.message}`, 'a memory read waits for the target\'s mmap lock: a process whose memory map is held (a page fault on a hung file system) is itself hung');
    else if (e.code === 'EPERM') limit('EPERM', e.message, 'Run iokit-snap as the user that owns the process, or as root / with CAP_SYS_PTRACE (sudo).');
    else limit(e.code, `goroutines not read: ${e.message}`);
  }
  return result;
}

function reasonText(binary: GoBinary, strings: string[] | null, value: number): string {
  const text = strings?.[value];
  if (text !== undefined && text !== '') return text;
  return binary.waitReasonNames.get(value) ?? `waitReason ${value}`;
}

/** runtime.isSystemGoroutine, by the start function: a runtime function other than runtime.main. */
function isSystemFunction(name: string): boolean {
  return name.startsWith('runtime.') && name !== 'runtime.main' && name !== 'runtime.handleAsyncEvent';
}

function checkCount(who: string, name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new IokitSnapError('EINVAL', `${who}: ${name} must be a positive integer, got ${String(value)}`);
  return value;
}

/** A pc's frames (inlined calls first), named from the pclntab; one unnamed frame when it cannot be. */
async function nameFrames(binary: GoBinary, pc: number, bias: number, returnAddress: boolean, module: string): Promise<Frame[]> {
  const fileAddress = pc - bias;
  const names = binary.pclntab !== null ? await binary.pclntab.frames(fileAddress, returnAddress).catch(() => []) : [];
  if (names.length === 0) return [{ pc, module, offset: fileAddress, symbol: null }];
  return names.map((n) => {
    const frame: Frame = { pc, module, offset: fileAddress, symbol: n.name, symbolOffset: n.offset };
    if (n.inlined) frame.inlined = true;
    return frame;
  });
}

/**
 * Each goroutine's saved frames. Parked (waiting), runnable and preempted goroutines
 * have their registers in g.sched; a running goroutine's frames are on its thread's
 * stack (sched is stale) and a goroutine in a system call has only its call's pc here.
 */
async function walkFrames(
  gs: RawG[],
  memory: SampleMemory,
  binary: GoBinary,
  bias: number,
  maxFrames: number,
  module: string,
  limits: Limitation[],
  subject: string,
): Promise<Frame[][]> {
  const out: Frame[][] = gs.map(() => []);
  const pcs: number[][] = gs.map(() => []);
  const fps: number[] = gs.map(() => 0);
  for (let i = 0; i < gs.length; i++) {
    const g = gs[i];
    if (g.status === 'waiting' || g.status === 'runnable' || g.status === 'preempted') {
      if (g.schedPc !== 0) {
        pcs[i].push(g.schedPc);
        fps[i] = g.schedBp;
      }
    } else if (g.status === 'syscall' && g.syscallPc !== 0) {
      pcs[i].push(g.syscallPc);
    }
  }
  // One read per level for every goroutine still walking: [fp] = caller's fp, [fp+8] = return pc.
  let cut = 0;
  for (let level = 1; level < maxFrames; level++) {
    const walking: number[] = [];
    for (let i = 0; i < gs.length; i++) {
      const fp = fps[i];
      const g = gs[i];
      if (fp !== 0 && fp % 8 === 0 && fp >= g.stackLo && fp + 16 <= g.stackHi) walking.push(i);
      else fps[i] = 0;
    }
    if (walking.length === 0) break;
    const words = await memory.readSame(
      walking.map((i) => fps[i]),
      16,
    );
    for (let k = 0; k < walking.length; k++) {
      const i = walking[k];
      const word = words.buffer(k);
      if (word === null) {
        fps[i] = 0;
        continue;
      }
      const at = words.offset(k);
      const next = u64(word, at);
      const pc = u64(word, at + 8);
      if (pc === 0) {
        fps[i] = 0;
        continue;
      }
      pcs[i].push(pc);
      fps[i] = next > fps[i] ? next : 0;
    }
    if (level === maxFrames - 1) cut = walking.filter((i) => fps[i] !== 0).length;
  }
  if (cut > 0) limits.push({ subject, field: 'goroutines', code: 'E2BIG', reason: `${cut} goroutines have more than ${maxFrames} frames; the innermost ${maxFrames} were read (maxFrames)` });
  const cache = new Map<number, Frame[]>();
  for (let i = 0; i < gs.length; i++) {
    for (const pc of pcs[i]) {
      let frames = cache.get(pc);
      if (frames === undefined) {
        frames = await nameFrames(binary, pc, bias, true, module);
        cache.set(pc, frames);
      }
      out[i].push(...frames);
      // The walk ends at the goroutine's first function (runtime.goexit is its return address).
      if (frames.at(-1)?.symbol === 'runtime.goexit') break;
    }
  }
  return out;
}

/** Thread ids of the goroutines on an M (running, or in a system call): g.m → m.procid. */
async function threadIds(gs: RawG[], memory: SampleMemory, layout: GLayout): Promise<Map<number, number>> {
  const tids = new Map<number, number>();
  if (layout.mProcid === null) return tids;
  const onM = gs.filter((g) => g.m !== 0 && (g.status === 'running' || g.status === 'syscall'));
  if (onM.length === 0) return tids;
  const words = await memory.read(onM.map((g) => ({ address: g.m + layout.mProcid!, length: 8 })));
  onM.forEach((g, k) => {
    const word = words[k];
    const tid = word === null ? 0 : u64(word, 0);
    if (tid > 0 && tid < 2 ** 31) tids.set(g.address, tid);
  });
  return tids;
}
