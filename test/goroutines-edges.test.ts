/**
 * Goroutine reads (src/runtimes/go.ts, go-binary.ts) where the program file or the
 * process's memory is not what a healthy Go program gives: real Go programs
 * (test/targets/go/main.go, built once by helpers/go-targets.ts) read through
 *   - copies of their executable with one thing changed, as a rebuilt, damaged or
 *     differently linked binary would have it (a section or symbol renamed, a symbol's
 *     size, the DWARF's names, the pclntab's magic, the ELF machine), shown to the reader
 *     as the process's exe by a procRoot whose <pid>/exe links to the copy while the
 *     memory read is the real process's (the copies keep every address);
 *   - the real memory reads with one answer changed on the way back (a range unreadable,
 *     a word overwritten, an error), as a process that exits, frees a goroutine or
 *     overwrites a record while it is read would give them.
 */
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import * as memory from '../src/runtimes/memory';
import * as goBinaries from '../src/runtimes/go-binary';
import { ReadBudget, u64 } from '../src/runtimes/elf-file';
import { IokitSnapError } from '../src/errors';
import type { GoroutineSampleResult } from '../src/types';
import { goSkip, goBinary as buildGo, startGo, type GoBuild } from './helpers/go-targets';
import { waitFor } from './helpers/targets';

const skip = process.platform !== 'linux' ? 'goroutines are read on Linux only' : goSkip;

// ---- the memory reads, with a hook before and after each -------------------------------

interface Range {
  address: number;
  length: number;
  /** Where its bytes are in the answer. */
  offset: number;
}
type Raw = { bytes: Buffer; read: Buffer };
let before: ((ranges: Range[]) => Promise<void> | void) | null = null;
let after: ((ranges: Range[], raw: Raw) => void) | null = null;
function rangesOf(pairs: BigUint64Array): Range[] {
  const out: Range[] = [];
  let offset = 0;
  for (let i = 0; i < pairs.length; i += 2) {
    out.push({ address: Number(pairs[i]), length: Number(pairs[i + 1]), offset });
    offset += Number(pairs[i + 1]);
  }
  return out;
}
const go = t.mockRequire<typeof import('../src/runtimes/go')>('../src/runtimes/go', {
  '../src/runtimes/go-binary': goBinaries,
  '../src/runtimes/memory': {
    ...memory,
    readPacked: async (pid: number, pairs: BigUint64Array, timeoutMs: number) => {
      const ranges = rangesOf(pairs);
      await before?.(ranges);
      const raw = await memory.readPacked(pid, pairs, timeoutMs);
      after?.(ranges, raw);
      return raw;
    },
  },
});
function hooks(t: Test, hook: { before?: typeof before; after?: typeof after }): void {
  goBinaries.forgetGoBinaries();
  before = hook.before ?? null;
  after = hook.after ?? null;
  t.teardown(() => {
    before = null;
    after = null;
  });
}

// ---- executables with one thing changed ----------------------------------------------

const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-go-edges-'));
t.teardown(() => {
  goBinaries.forgetGoBinaries();
  fs.rmSync(WORK, { recursive: true, force: true });
});
let copies = 0;

interface Shdr {
  name: string;
  /** File offset of its name in .shstrtab, and of its header. */
  nameAt: number;
  headerAt: number;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  size: number;
  link: number;
}
function sections(b: Buffer): Shdr[] {
  const shoff = u64(b, 40);
  const count = b.readUInt16LE(60);
  const names = u64(b, shoff + b.readUInt16LE(62) * 64 + 24);
  return Array.from({ length: count }, (_, i) => {
    const at = shoff + i * 64;
    const nameAt = names + b.readUInt32LE(at);
    return {
      name: b.toString('latin1', nameAt, b.indexOf(0, nameAt)),
      nameAt,
      headerAt: at,
      type: b.readUInt32LE(at + 4),
      flags: u64(b, at + 8),
      addr: u64(b, at + 16),
      offset: u64(b, at + 24),
      size: u64(b, at + 32),
      link: b.readUInt32LE(at + 40),
    };
  });
}
const section = (b: Buffer, name: string): Shdr => sections(b).find((s) => s.name === name) ?? assertNever(`no section ${name}`);
function assertNever(what: string): never {
  throw new Error(what);
}
/** Renames a section (no longer than its name: the rest is NUL). */
function renameSection(b: Buffer, from: string, to: string): void {
  b.write(to.padEnd(from.length, '\0'), section(b, from).nameAt, 'latin1');
}
/** The file offset of .symtab's entry for `name`, and of its name in .strtab. */
function symbol(b: Buffer, name: string): { entry: number; nameAt: number } {
  const all = sections(b);
  const table = all.find((s) => s.type === 2)!;
  const strings = all[table.link];
  for (let at = table.offset; at < table.offset + table.size; at += 24) {
    const nameAt = strings.offset + b.readUInt32LE(at);
    if (b.toString('latin1', nameAt, nameAt + name.length + 1) === `${name}\0`) return { entry: at, nameAt };
  }
  return assertNever(`no symbol ${name}`);
}
/** Go's linker compresses .debug_info (SHF_COMPRESSED, zlib): inflate, change, deflate harder (it fits), put back. */
function editDwarf(b: Buffer, edit: (info: Buffer) => void): void {
  const info = section(b, '.debug_info');
  const inflated = inflateSync(b.subarray(info.offset + 24, info.offset + info.size));
  edit(inflated);
  const deflated = deflateSync(inflated, { level: 9 });
  if (24 + deflated.length > info.size) throw new Error('the edited DWARF does not fit');
  deflated.copy(b, info.offset + 24);
  b.writeBigUInt64LE(BigInt(24 + deflated.length), info.headerAt + 32);
}
/** Every `from` in `buf` becomes `to` (as long); how many. */
function replaceAll(buf: Buffer, from: string, to: string): number {
  let count = 0;
  for (let at = buf.indexOf(from); at >= 0; at = buf.indexOf(from, at + 1)) {
    buf.write(to, at, 'latin1');
    count++;
  }
  return count;
}
/** A copy of `kind`'s executable with `edit` applied; its path. */
async function changed(kind: GoBuild, edit: (b: Buffer) => void): Promise<string> {
  const bytes = fs.readFileSync(await buildGo(kind));
  edit(bytes);
  const file = path.join(WORK, `copy-${copies++}`);
  fs.writeFileSync(file, bytes, { mode: 0o755 });
  return file;
}
/** A procRoot where pid's exe is `exe` (and its auxv the real one, or `auxv`). */
function procRoot(pid: number, exe: string, auxv?: Buffer): string {
  const root = path.join(WORK, `root-${copies++}`);
  fs.mkdirSync(path.join(root, String(pid)), { recursive: true });
  fs.symlinkSync(exe, path.join(root, String(pid), 'exe'));
  fs.writeFileSync(path.join(root, String(pid), 'auxv'), auxv ?? fs.readFileSync(`/proc/${pid}/auxv`));
  return root;
}
const budget = () => new ReadBudget(performance.now() + 20000, 1 << 30);
const analyse = async (file: string) => (await goBinaries.goBinary(file, budget())).binary!;

const lockers = (r: GoroutineSampleResult) => (r.goroutines ?? []).filter((g) => g.status === 'waiting' && g.frames.some((f) => f.symbol === 'sync.(*Mutex).Lock'));

t.test('executables with one thing changed: what go-binary reads of them', { skip }, async (t) => {
  const plainPath = await buildGo('plain');
  const plain = await analyse(plainPath);
  const bytes = fs.readFileSync(plainPath);
  t.ok(plain.layout && plain.pclntab && plain.allgs, 'the plain build is read whole');

  // The reader over the file by virtual address: nothing where no section is; a walk over
  // every allocated section (more than the 256 chunks of 16 KiB it keeps) reads the file's bytes.
  const { reader } = await goBinaries.goBinary(plainPath, budget());
  t.equal((await reader!(1, 8)).length, 0, 'an address in no section');
  let mismatches = 0;
  let total = 0;
  for (const s of sections(bytes).filter((s) => s.addr !== 0 && s.type !== 8)) {
    for (let at = 0; at < s.size; at += 40000) {
      const length = Math.min(40000, s.size - at);
      const got = await reader!(s.addr + at, length);
      total += got.length;
      if (!got.equals(bytes.subarray(s.offset + at, s.offset + at + length))) mismatches++;
    }
  }
  t.ok(total > 4 * 1024 * 1024, `${total} bytes read through the chunk cache`);
  t.equal(mismatches, 0, 'each read is the file’s bytes');

  // The file cut short after it was analysed (rebuilt in place): reads past its new end are empty.
  const cutPath = await changed('plain', () => undefined);
  const cut = await goBinaries.goBinary(cutPath, budget());
  fs.truncateSync(cutPath, 4096);
  t.equal((await cut.reader!(section(bytes, '.rodata').addr + 100000, 64)).length, 0, 'past the end of a file that shrank');

  // The Go 1.20+ name of the funcdata base (go:func.*); the pclntab found by symbol, then by moduledata.
  const colon = await analyse(await changed('plain', (b) => b.write('go:func.*', symbol(b, 'go.func.*').nameAt, 'latin1')));
  t.equal(colon.pclntab?.base, plain.pclntab!.base, 'go:func.*');
  const bySymbol = await analyse(await changed('plain', (b) => renameSection(b, '.gopclntab', '.gopclntaX')));
  t.equal(bySymbol.pclntab?.base, plain.pclntab!.base, 'no .gopclntab section: runtime.pclntab');
  const byModule = await analyse(
    await changed('plain', (b) => {
      renameSection(b, '.gopclntab', '.gopclntaX');
      b.write('X', symbol(b, 'runtime.pclntab').nameAt + 'runtime.pclntab'.length - 1, 'latin1');
    }),
  );
  t.equal(byModule.pclntab?.base, plain.pclntab!.base, 'neither: runtime.firstmoduledata.pclntable');
  const noText = await analyse(
    await changed('plain', (b) => {
      renameSection(b, '.text', '.texX');
      b.write('X', symbol(b, 'runtime.text').nameAt + 'runtime.text'.length - 1, 'latin1');
    }),
  );
  t.ok(noText.pclntab, 'no .text and no runtime.text: the header’s textStart');
  const str = await analyse(await changed('plain', (b) => renameSection(b, '.debug_line', '.debug_str')));
  t.same(str.layout, plain.layout, 'a .debug_str (Go writes none) is read too');

  // Stripped: no .noptrbss (no gofunc), no .noptrdata (no moduledata), no .rodata (no wait-reason strings).
  t.ok((await analyse(await changed('stripped', (b) => renameSection(b, '.noptrbss', '.noptrbsX')))).pclntab, 'no .noptrbss');
  t.ok((await analyse(await changed('stripped', (b) => renameSection(b, '.noptrdata', '.noptrdatX')))).pclntab, 'no .noptrdata');
  t.equal((await analyse(await changed('stripped', (b) => renameSection(b, '.rodata', '.rodatX')))).waitReasons, null, 'no .rodata');

  // DWARF that does not describe runtime.g as the reader needs it.
  const dwarf = async (edit: (info: Buffer) => void) => (await analyse(await changed('plain', (b) => editDwarf(b, edit)))).layout;
  t.equal(await dwarf((i) => t.ok(replaceAll(i, 'runtime.stack\0', 'runtime.stacX\0'))), null, 'no runtime.stack');
  t.equal(await dwarf((i) => t.ok(replaceAll(i, 'syscallsp\0', 'syscallsX\0') === 1)), null, 'no g.syscallsp');
  t.equal(
    await dwarf((i) => {
      // atomicstatus (uint32) and paniconfault (bool) trade names: a 1-byte status.
      t.ok(replaceAll(i, 'atomicstatus\0', '\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\0') === 1 && replaceAll(i, 'paniconfault\0', 'atomicstatus\0') === 1);
      replaceAll(i, '\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\0', 'paniconfault\0');
    }),
    null,
    'an atomicstatus that is not 4 bytes',
  );
  t.equal((await dwarf((i) => t.ok(replaceAll(i, 'procid\0', 'procix\0') === 1)))?.mProcid, null, 'no m.procid');
  t.equal(
    (
      await dwarf((i) => {
        // runtime.gobuf's members: sp, pc, g, …, each a DIE of the same abbreviation: its g
        // (the next after pc with pc's abbreviation code before it) renamed.
        const pc = i.indexOf('pc\0', i.indexOf('runtime.gobuf\0'));
        let at = i.indexOf('g\0', pc + 3);
        while (i[at - 1] !== i[pc - 1]) at = i.indexOf('g\0', at + 1);
        i.write('G', at, 'latin1');
      })
    )?.schedG,
    null,
    'no gobuf.g',
  );

  // A DWARF section that does not inflate: an error, and the next call tries again.
  const broken = await changed('plain', (b) => b.fill(0x55, section(b, '.debug_info').offset + 40, section(b, '.debug_info').offset + 200));
  await t.rejects(goBinaries.goBinary(broken, budget()), { code: 'ENOTSUP', message: /does not inflate/ });
  await t.rejects(goBinaries.goBinary(broken, budget()), { code: 'ENOTSUP', message: /does not inflate/ }, 'not kept: read again');
});

t.test('a process whose memory answers otherwise: each read that fails says so', { skip }, async (t) => {
  const target = await startGo(t, 'plain', 'deadlock');
  await waitFor(async () => lockers(await go.sampleGoroutines(target.pid)).length === 2, 'both goroutines waiting on the other mutex');
  const binary = await analyse(await buildGo('plain'));
  const layout = binary.layout!;
  const sample = (options = {}) => go.sampleGoroutines(target.pid, options);
  const gRecords = (ranges: Range[]) => ranges.length > 0 && ranges.every((r) => r.length === layout.span);
  const header = (ranges: Range[]) => ranges[0]?.length === 24 && ranges[0].address === binary.allgs;

  await t.test('records changed while read', async (t) => {
    let touched = false;
    hooks(t, {
      after: (ranges, raw) => {
        if (gRecords(ranges) && !touched) {
          touched = true;
          const status = (k: number) => raw.bytes.readUInt32LE(ranges[k].offset + layout.atomicstatus);
          const waiting = ranges.map((_, k) => k).filter((k) => k > 2 && status(k) === 4);
          raw.bytes.writeUInt32LE(11, ranges[0].offset + layout.atomicstatus); // a status no runtime has
          raw.bytes.writeBigUInt64LE(0n, ranges[1].offset + layout.startpc); // no start function
          raw.read[2] = 0; // unreadable
          raw.bytes.writeBigUInt64LE(8n, ranges[waiting[0]].offset + layout.schedG!); // not pointing back: freed
          raw.bytes.writeBigUInt64LE(123456789n, ranges[waiting[1]].offset + layout.waitsince);
          raw.bytes[ranges[waiting[1]].offset + layout.waitreason] = 200; // a reason past the table
        } else if (ranges.length > 1 && ranges.every((r) => r.length === 16)) {
          raw.read[0] = 0; // a frame word unreadable
          raw.bytes.writeBigUInt64LE(0n, ranges[1].offset + 8); // a return pc of 0
        } else if (ranges.every((r) => r.length === 8)) {
          raw.read.fill(0); // m.procid unreadable
        }
      },
    });
    const r = await sample();
    t.ok(touched);
    t.ok(r.goroutines!.some((g) => g.status === 'unknown'), 'a status the runtime does not have: unknown');
    t.ok(r.goroutines!.some((g) => g.start === null), 'no start function');
    t.match(r.limits, [{ code: 'EIO', reason: /^2 of \d+ goroutine records were not readable/ }], 'the unreadable and the freed record');
    const late = r.goroutines!.find((g) => g.waitSinceNs === 123456789);
    t.equal(late?.waitReason, 'waitReason 200', 'a reason past the strings and the DWARF: its number');
    t.ok(r.goroutines!.filter((g) => g.status === 'waiting' && new Set(g.frames.map((f) => f.pc)).size === 1).length >= 2, 'walks cut at an unreadable word and a 0 return pc');
    t.notOk(r.goroutines!.some((g) => g.tid !== undefined), 'no thread ids where m.procid does not read');
  });

  await t.test('no goroutine on a thread', async (t) => {
    hooks(t, { after: (ranges, raw) => gRecords(ranges) && ranges.forEach((r) => raw.bytes.writeUInt32LE(4, r.offset + layout.atomicstatus)) });
    const r = await sample();
    t.ok(r.goroutines!.every((g) => g.status === 'waiting' && g.tid === undefined));
  });

  await t.test('runtime.allgs itself', async (t) => {
    const cases: [string, typeof after, RegExp | null, object?][] = [
      ['unreadable', (ranges, raw) => header(ranges) && (raw.read[0] = 0), /^goroutines not read: runtime\.allgs is not readable in the process/],
      ['a length no runtime has', (ranges, raw) => header(ranges) && (raw.bytes.writeBigUInt64LE(1n << 40n, 8), ranges[1] && raw.bytes.writeBigUInt64LE(1n << 40n, 24)), /reads as \d+ goroutines/],
      ['empty', (ranges, raw) => header(ranges) && raw.bytes.writeBigUInt64LE(0n, 8), null],
      ['longer than one read', (ranges, raw) => header(ranges) && (raw.bytes.writeBigUInt64LE(600000n, 8), raw.bytes.writeBigUInt64LE(600000n, 24)), /a single memory range is larger than one read/, { maxGoroutines: 1_000_000 }],
    ];
    for (const [what, hook, reason, options] of cases) {
      await t.test(what, async (t) => {
        hooks(t, { after: hook });
        const r = await sample(options);
        if (reason === null) t.same(r.goroutines, [], 'no goroutines');
        else t.match(r.limits, [{ field: 'goroutines', reason }]);
      });
    }
    await t.test('its array unreadable', async (t) => {
      let next = false;
      hooks(t, {
        after: (ranges, raw) => {
          if (next) raw.read[0] = 0;
          next = header(ranges);
        },
      });
      t.match((await sample()).limits, [{ code: 'EIO', reason: /the array of runtime\.allgs is not readable/ }]);
    });
    await t.test('more than a sample reads', async (t) => {
      // 100 records of 1 MiB each (the layout's span set so in the analysed binary; the
      // array of pointers given as read, all 0): past the 64 MiB one sample may read.
      let array = false;
      hooks(t, {
        after: (ranges, raw) => {
          if (array) {
            raw.bytes = Buffer.alloc(ranges[0].length);
            raw.read[0] = 1;
            array = false;
          }
          if (header(ranges)) {
            raw.bytes.writeBigUInt64LE(100n, 8);
            raw.bytes.writeBigUInt64LE(100n, 24);
            array = true;
          }
        },
      });
      (await analyse(await buildGo('plain'))).layout!.span = 1 << 20;
      t.match((await sample()).limits, [{ code: 'EIO', reason: /would read more than \d+ bytes/ }]);
    });
  });

  await t.test('errors from the read itself', async (t) => {
    for (const [code, hint] of [['ESRCH', undefined], ['EPERM', /root|CAP_SYS_PTRACE/]] as const) {
      await t.test(code, async (t) => {
        hooks(t, { before: (ranges) => {
          if (header(ranges)) throw new IokitSnapError(code, `${code} from the read`);
        } });
        const r = await sample();
        t.match(r.limits, [{ code, ...(hint ? { hint } : {}) }]);
        t.equal(r.goroutines, null);
      });
    }
    await t.test('a read that takes the time left', async (t) => {
      hooks(t, { before: (ranges) => (header(ranges) ? new Promise((resolve) => setTimeout(resolve, 400)) : undefined) });
      await analyse(await buildGo('plain')); // analysed already: the time goes to the reads
      t.match((await sample({ timeoutMs: 300 })).limits, [{ code: 'ETIMEDOUT', reason: /did not finish in 300 ms.*ran out of time/ }]);
    });
  });

  await t.test('the wait-reason strings', async (t) => {
    const table = binary.waitReasonStrings!;
    await t.test('their headers unreadable: the reason by number', async (t) => {
      hooks(t, { after: (ranges, raw) => ranges[0]?.address === table.addr && ranges[0].length === table.count * 16 && (raw.read[0] = 0) });
      const r = await sample();
      t.ok(lockers(r).length === 2 && lockers(r).every((g) => g.waitReason === 'waitReasonSemacquire'), 'the name of its constant in the DWARF');
    });
    await t.test('one string unreadable', async (t) => {
      hooks(t, { after: (ranges, raw) => ranges.length === table.count && raw.read.fill(0) });
      const r = await sample();
      t.ok(lockers(r).length === 2 && lockers(r).every((g) => g.waitReason === 'waitReasonSemacquire'), 'an empty string: the name of its constant');
    });
  });

  await t.test('executables with one thing changed', async (t) => {
    hooks(t, {});
    const read = async (edit: (b: Buffer) => void) => go.sampleGoroutines(target.pid, { procRoot: procRoot(target.pid, await changed('plain', edit)) });
    const huge = await read((b) => b.writeBigUInt64LE(16n * 300n, symbol(b, 'runtime.waitReasonStrings').entry + 16));
    t.ok(lockers(huge).length === 2 && lockers(huge).every((g) => g.waitReason === 'waitReasonSemacquire'), 'a wait-reason table larger than any: not read');
    const noProcid = await read((b) => editDwarf(b, (i) => replaceAll(i, 'procid\0', 'procix\0')));
    t.ok(lockers(noProcid).length === 2 && noProcid.goroutines!.every((g) => g.tid === undefined), 'no m.procid in the DWARF: no thread ids');
    const badMagic = await read((b) => b.writeUInt32LE(0xfffffffa, section(b, '.gopclntab').offset));
    t.ok(badMagic.goroutines!.length > 3 && badMagic.goroutines!.every((g) => g.frames.every((f) => f.symbol === null)), 'a pclntab not read: frames unnamed');
    const riscv = await read((b) => b.writeUInt16LE(243, 18));
    t.match(riscv, { goroutines: null, limits: [{ code: 'ENOTSUP', reason: /ELF machine 243/, hint: /-ldflags/ }] });
    const noDwarf = await read((b) => renameSection(b, '.debug_info', '.debug_infX'));
    t.equal(lockers(noDwarf).length, 2, 'no DWARF (as -ldflags=-w): the layout of runtime.g inferred');
  });

  await t.test('no DWARF and runtime.allgs unreadable', async (t) => {
    const exe = await changed('plain', (b) => renameSection(b, '.debug_info', '.debug_infX'));
    hooks(t, { after: (ranges, raw) => header(ranges) && (raw.read[0] = 0) });
    t.match((await go.sampleGoroutines(target.pid, { procRoot: procRoot(target.pid, exe) })).limits, [{ code: 'ENOTSUP', reason: /runtime\.allgs is not readable/ }]);
  });

  await t.test('the program file not readable', async (t) => {
    const denied = t.mockRequire<typeof import('../src/runtimes/go')>('../src/runtimes/go', {
      'node:fs': { ...fs, promises: { ...fs.promises, open: () => Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })) } },
    });
    t.match(await denied.sampleGoroutines(target.pid), { goroutines: null, limits: [{ code: 'EPERM', hint: /root|CAP_SYS_PTRACE/ }] });
  });
});

t.test('a PIE whose auxv has no AT_ENTRY', { skip }, async (t) => {
  hooks(t, {});
  const target = await startGo(t, 'pie', 'deadlock');
  const r = await go.sampleGoroutines(target.pid, { procRoot: procRoot(target.pid, await buildGo('pie'), Buffer.alloc(64)) });
  t.match(r.limits, [{ code: 'EIO', reason: /has no AT_ENTRY/ }]);
});

t.test('a stripped program: runtime.allgs and the layout of runtime.g found in memory, or why not', { skip }, async (t) => {
  const target = await startGo(t, 'stripped', 'deadlock');
  await waitFor(async () => lockers(await go.sampleGoroutines(target.pid)).length === 2, 'both goroutines waiting on the other mutex');
  const layout = (await analyse(await buildGo('plain'))).layout!; // the same runtime: the same runtime.g
  const stripped = await analyse(await buildGo('stripped'));
  const bss = stripped.bss!;
  const inBss = (ranges: Range[]) => ranges.length > 0 && ranges[0].address === bss.addr;
  const records = (ranges: Range[]) => ranges.length > 0 && ranges.every((r) => r.length === 512);
  const each = (ranges: Range[], raw: Raw, edit: (at: number, k: number) => void) => ranges.forEach((r, k) => raw.read[k] === 1 && edit(r.offset, k));
  const status = (raw: Raw, at: number) => raw.bytes.readUInt32LE(at + layout.atomicstatus);

  const cases: [string, typeof after, RegExp | null][] = [
    ['.bss unreadable', (ranges, raw) => inBss(ranges) && raw.read.fill(0), /\.bss of the process is not readable/],
    ['no slice of goroutines in .bss', (ranges, raw) => inBss(ranges) && raw.bytes.fill(0), /no slice of goroutine records/],
    ['runtime.allgs unreadable once found', (ranges, raw) => ranges[0]?.length === 24 && (raw.read[0] = 0), /the array of runtime\.allgs is not readable/],
    ['records that do not point back at themselves', (ranges, raw) => records(ranges) && each(ranges, raw, (at) => raw.bytes.writeBigUInt64LE(8n, at + 72)), /records of runtime\.allgs do not check out/],
    ['no word that reads as a status', (ranges, raw) => records(ranges) && each(ranges, raw, (at) => raw.bytes.fill(0xff, at + 128, at + 512)), /could not be inferred/],
    ['wait reasons past the table', (ranges, raw) => records(ranges) && each(ranges, raw, (at) => (raw.bytes[at + layout.waitreason] = 255)), /could not be inferred/],
    ['every goroutine dead', (ranges, raw) => records(ranges) && each(ranges, raw, (at) => raw.bytes.writeUInt32LE(6, at + layout.atomicstatus)), /could not be inferred/],
    ['start functions not at a function’s entry', (ranges, raw) => records(ranges) && each(ranges, raw, (at) => raw.bytes.writeBigUInt64LE(raw.bytes.readBigUInt64LE(at + layout.startpc) + 1n, at + layout.startpc)), /could not be inferred/],
    ['none parked', (ranges, raw) => records(ranges) && each(ranges, raw, (at) => status(raw, at) !== 0 && status(raw, at) !== 6 && raw.bytes.writeUInt32LE(2, at + layout.atomicstatus)), /could not be inferred/],
    ['a record with no stack', (ranges, raw) => {
      if (!records(ranges)) return;
      let done = false;
      each(ranges, raw, (at, k) => {
        if (done || k === 0 || status(raw, at) === 4) return;
        raw.bytes.fill(0, at, at + 16); // stack.lo = stack.hi = 0
        done = true;
      });
    }, null],
  ];
  for (const [what, hook, reason] of cases) {
    await t.test(what, async (t) => {
      hooks(t, { after: hook });
      const r = await go.sampleGoroutines(target.pid);
      if (reason === null) t.equal(lockers(r).length, 2, 'read all the same');
      else t.match(r, { goroutines: null, limits: [{ code: 'ENOTSUP', reason, hint: /-ldflags/ }] });
    });
  }

  await t.test('a second slice that looks like allgs, shorter', async (t) => {
    hooks(t, {});
    await go.sampleGoroutines(target.pid);
    const allgs = (await analyse(await buildGo('stripped'))).stripped!.allgs!;
    hooks(t, {
      after: (ranges, raw) => {
        if (!inBss(ranges)) return;
        const real = allgs - bss.addr;
        const copy = raw.bytes.subarray(real, real + 24);
        for (let at = 0; at + 24 <= raw.bytes.length; at += 8) {
          if (Math.abs(at - real) >= 24 && raw.bytes.subarray(at, at + 24).every((x) => x === 0)) {
            copy.copy(raw.bytes, at);
            raw.bytes.writeBigUInt64LE(1n, at + 8); // len 1
            break;
          }
        }
      },
    });
    const r = await go.sampleGoroutines(target.pid);
    t.equal(lockers(r).length, 2, 'the longer slice is allgs');
  });

  await t.test('executables with one thing changed', async (t) => {
    hooks(t, {});
    const read = async (edit: (b: Buffer) => void) => go.sampleGoroutines(target.pid, { procRoot: procRoot(target.pid, await changed('stripped', edit)) });
    t.match(await read((b) => renameSection(b, '.bss', '.bsX')), { goroutines: null, limits: [{ code: 'ENOTSUP', reason: /has no \.bss/ }] });
    const noReasons = await read((b) => t.ok(replaceAll(b, 'GC assist marking', 'gc_assist_marking')));
    hooks(t, { after: (ranges, raw) => records(ranges) && each(ranges, raw, (at) => raw.bytes.fill(0xff, at + 128, at + 512)) });
    t.match(await read((b) => b.write('not buildinfo', section(b, '.go.buildinfo').offset, 'latin1')), { goVersion: null, limits: [{ code: 'ENOTSUP', reason: /layout of runtime\.g in this Go could not be inferred/ }] }, 'no version, no layout');
    t.ok(lockers(noReasons).length === 2 && lockers(noReasons).every((g) => /^waitReason \d+$/.test(g.waitReason!)), 'no wait-reason strings: the reasons by number');
  });
});
