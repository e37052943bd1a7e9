/**
 * The ELF reader on corrupt, truncated and hostile files: seeded mutations of real
 * ELF files (programs built here, the system C library, a debug file found by build
 * id) through every method. Each case must give results of the right shape or EINVAL
 * at open, never a crash (the addon runs in this process), and never a hang (tap's
 * timeout). The mutations aim at the bytes the reader parses: the ELF and program
 * headers, section headers, symbol and string tables, .eh_frame(_hdr), .debug_frame,
 * notes and the debug link.
 *
 *   ELF_FUZZ_SEED=n ELF_FUZZ_CASES=n   another seed, more cases (defaults: 1, 400)
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { binding, type ElfMachine, type NativeInternals } from '../src/native';
import { buildElf, nmFunctions, readelfFrames, systemLibc, tool } from './helpers/elf';
import { mulberry32 } from './helpers/random';

const SEED = Number(process.env.ELF_FUZZ_SEED ?? 1);
const CASES = Number(process.env.ELF_FUZZ_CASES ?? 400);
const HOST: ElfMachine = process.arch === 'arm64' ? 'arm64' : 'x64';

function hooks(): Required<Pick<NativeInternals, 'elfSymbolAt' | 'elfUnwindRuleAt' | 'elfAddressOfFileOffset' | 'elfInfo'>> {
  return binding().internals as never;
}

const generator = mulberry32;

interface Seed {
  name: string;
  bytes: Buffer;
  machine: ElfMachine;
  /** [start, end) byte ranges the reader parses. */
  regions: Array<[number, number]>;
  addresses: bigint[];
}

function seedOf(name: string, file: string, machine: ElfMachine): Seed {
  const bytes = fs.readFileSync(file);
  const regions: Array<[number, number]> = [[0, 64]];
  const phoff = Number(bytes.readBigUInt64LE(0x20));
  const shoff = Number(bytes.readBigUInt64LE(0x28));
  regions.push([phoff, phoff + 56 * bytes.readUInt16LE(0x38)]);
  if (shoff > 0) regions.push([shoff, shoff + 64 * bytes.readUInt16LE(0x3c)]);
  const sections = tool('readelf', ['-SW', file]);
  for (const match of sections.matchAll(/\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)/g)) {
    if (!/^\.(eh_frame|eh_frame_hdr|symtab|strtab|dynsym|dynstr|debug_frame|gnu_debuglink|note\.gnu\.build-id|shstrtab)$/.test(match[1])) continue;
    const offset = parseInt(match[2], 16);
    regions.push([offset, Math.min(bytes.length, offset + parseInt(match[3], 16))]);
  }
  const functions = nmFunctions(file, name === 'libc');
  const step = Math.max(1, Math.floor(functions.length / 48));
  const addresses = functions.filter((_, i) => i % step === 0).flatMap((s) => [s.address, s.address + s.size / 2n]);
  const fdes = readelfFrames(file);
  const fdeStep = Math.max(1, Math.floor(fdes.length / 48));
  addresses.push(...fdes.filter((_, i) => i % fdeStep === 0).map((f) => f.start + (f.end - f.start) / 3n));
  return { name, bytes, machine, regions: regions.filter(([a, b]) => b > a && a < bytes.length), addresses };
}

const INTERESTING = [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0xffffn, 0x7fffffffn, 0x80000000n, 0xfffffff0n, 0xffffffffn, 2n ** 63n, 2n ** 64n - 1n];

function mutate(seed: Seed, random: () => number): { bytes: Buffer; what: string } {
  const pick = (n: number): number => Math.floor(random() * n);
  const kind = pick(4);
  if (kind === 0) {
    const length = pick(seed.bytes.length);
    return { bytes: seed.bytes.subarray(0, length), what: `truncated to ${length}` };
  }
  const bytes = Buffer.from(seed.bytes);
  const [start, end] = seed.regions[pick(seed.regions.length)];
  const at = (): number => start + pick(end - start);
  if (kind === 1) {
    const count = 1 + pick(8);
    for (let i = 0; i < count; i++) bytes[at()] = pick(256);
    return { bytes, what: `${count} random bytes in [${start}, ${end})` };
  }
  if (kind === 2) {
    const width = [1, 2, 4, 8][pick(4)];
    const offset = Math.min(at(), bytes.length - width);
    const value = INTERESTING[pick(INTERESTING.length)] & ((1n << BigInt(width * 8)) - 1n);
    for (let i = 0; i < width; i++) bytes[offset + i] = Number((value >> BigInt(8 * i)) & 0xffn);
    return { bytes, what: `${width}-byte ${value} at ${offset}` };
  }
  // A chunk of the file copied over the region: valid-looking structure in the wrong place.
  const length = 1 + pick(64);
  const from = pick(Math.max(1, bytes.length - length));
  const to = Math.min(at(), bytes.length - length);
  seed.bytes.copy(bytes, to, from, from + length);
  return { bytes, what: `${length} bytes from ${from} copied to ${to}` };
}

/** Every method on `root + file`; throws with the reason when a result is malformed. */
function exercise(root: string, file: string, seed: Seed, random: () => number): 'opened' | 'refused' {
  let info;
  try {
    info = hooks().elfInfo(root, file, seed.machine);
  } catch (error) {
    if ((error as { code?: string }).code !== 'EINVAL') throw error;
    return 'refused';
  }
  if (typeof info.hasSymbols !== 'boolean' || typeof info.hasUnwindInfo !== 'boolean' || typeof info.debugFile !== 'string')
    throw new Error(`elfInfo: ${JSON.stringify(info)}`);
  const addresses = [...seed.addresses, ...Array.from({ length: 8 }, () => BigInt(Math.floor(random() * 2 ** 32)))];
  for (const symbol of hooks().elfSymbolAt(root, file, addresses, seed.machine)) {
    if (symbol !== null && (typeof symbol.name !== 'string' || !(symbol.offset >= 0))) throw new Error(`elfSymbolAt: ${JSON.stringify(symbol)}`);
  }
  for (const rule of hooks().elfUnwindRuleAt(root, file, addresses, seed.machine)) {
    if (rule === null) continue;
    const ok =
      ['sp', 'fp'].includes(rule.cfaBase) && ['cfa', 'lr', 'undefined'].includes(rule.ra) && ['same', 'cfa'].includes(rule.fp) &&
      Number.isFinite(rule.cfaOffset) && Number.isFinite(rule.raOffset) && Number.isFinite(rule.fpOffset) &&
      (rule.ra !== 'lr' || seed.machine === 'arm64');
    if (!ok) throw new Error(`elfUnwindRuleAt: ${JSON.stringify(rule)}`);
  }
  const offsets = Array.from({ length: 8 }, () => BigInt(Math.floor(random() * seed.bytes.length * 2)));
  for (const address of hooks().elfAddressOfFileOffset(root, file, offsets, seed.machine)) {
    if (address !== null && typeof address !== 'bigint') throw new Error(`elfAddressOfFileOffset: ${String(address)}`);
  }
  return 'opened';
}

if (process.platform !== 'linux') {
  t.pass('the ELF reader is Linux only');
} else {
  t.test(`seeded mutations of real ELF files (seed ${SEED}, ${CASES} cases)`, async (t) => {
    const seeds = [
      seedOf('frame pointers', await buildElf('elf-functions.c', ['-O0', '-fno-omit-frame-pointer', '-Wl,--build-id=sha1']), HOST),
      seedOf('-O2', await buildElf('elf-functions.c', ['-O2', '-fomit-frame-pointer']), HOST),
      seedOf('.debug_frame', await buildElf('elf-functions.c', ['-O2', '-fno-asynchronous-unwind-tables', '-g']), HOST),
      seedOf('no .eh_frame_hdr', await buildElf('elf-functions.c', ['-O2', '-Wl,--no-eh-frame-hdr']), HOST),
      seedOf(
        'arm64',
        await buildElf('elf-nostdlib.c', ['--target=aarch64-linux-gnu', '-O1', '-nostdlib', '-static', '-fuse-ld=lld', '-fasynchronous-unwind-tables'], 'clang-14'),
        'arm64',
      ),
    ];
    seeds.push(
      seedOf(
        'arm64 pointer authentication',
        await buildElf(
          'elf-nostdlib.c',
          ['--target=aarch64-linux-gnu', '-O1', '-nostdlib', '-static', '-fuse-ld=lld', '-fasynchronous-unwind-tables', '-mbranch-protection=pac-ret+leaf+b-key'],
          'clang-14',
        ),
        'arm64',
      ),
    );
    if (HOST === 'x64') seeds.push(seedOf('hand-written CFI', await buildElf('elf-cfi.S', ['-nostdlib', '-static']), 'x64'));
    const libc = seedOf('libc', systemLibc(), HOST);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-elf-fuzz-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

    const random = generator(SEED);
    const counts = { opened: 0, refused: 0 };
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      // One case in ten mutates the C library (2 MB a write); the others, small programs.
      const seed = i % 10 === 9 ? libc : seeds[i % seeds.length];
      const { bytes, what } = mutate(seed, random);
      const file = path.join(dir, 'case');
      fs.writeFileSync(file, bytes);
      try {
        counts[exercise('', file, seed, random)]++;
      } catch (error) {
        failures.push(`case ${i} (${seed.name}, ${what}): ${(error as Error).message}`);
      }
    }
    t.same(failures, [], 'only results of the right shape, or EINVAL at open');
    t.ok(counts.opened > CASES / 4 && counts.refused > 0, `${counts.opened} opened, ${counts.refused} refused at open`);
  });

  t.test('a mutated debug file found by build id', async (t) => {
    const built = await buildElf('elf-functions.c', ['-O2', '-fno-asynchronous-unwind-tables', '-g', '-Wl,--build-id=sha1']);
    const id = /Build ID: ([0-9a-f]+)/.exec(tool('readelf', ['-n', built]))![1];
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-elf-fuzz-'));
    t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
    fs.mkdirSync(path.join(root, 'bin'));
    tool('objcopy', ['--strip-all', built, path.join(root, 'bin/prog')]);
    const debugPath = path.join(root, `usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`);
    fs.mkdirSync(path.dirname(debugPath), { recursive: true });
    tool('objcopy', ['--only-keep-debug', built, debugPath]);
    const seed = seedOf('debug file', debugPath, HOST);
    seed.addresses = nmFunctions(built).map((s) => s.address + 1n);
    const random = generator(SEED + 1);
    const failures: string[] = [];
    let used = 0;
    for (let i = 0; i < Math.ceil(CASES / 4); i++) {
      const { bytes, what } = mutate(seed, random);
      fs.writeFileSync(debugPath, bytes);
      try {
        exercise(root, '/bin/prog', seed, random);
        if (hooks().elfInfo(root, '/bin/prog').debugFile !== '') used++;
      } catch (error) {
        failures.push(`case ${i} (${what}): ${(error as Error).message}`);
      }
    }
    t.same(failures, [], 'only results of the right shape');
    t.ok(used > 0, `${used} mutated debug files were accepted (their build id intact) and read`);
  });
}
