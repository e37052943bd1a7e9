/**
 * The ELF reader on what Go binaries and distributions' debug files carry
 * (native/linux/elf_gopclntab.cc, elf_inflate.cc): sections compressed in place
 * (SHF_COMPRESSED, zlib), checked against readelf, which inflates them itself, and
 * against Node's zlib; and Go's own function table (pclntab), whose SP-delta rules must
 * equal the .debug_frame the Go linker derives from the same table (readelf), whose
 * frame-pointer rule must match the prologues objdump shows, and which names and unwinds
 * a stripped Go program. Real programs built here (test/targets); the Go parts skip,
 * with a line, where `go` is absent.
 */
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { binding, type ElfMachine, type ElfUnwindRule, type NativeInternals } from '../src/native';
import { buildElf, expectedRule, nmFunctions, readelfFrames, rowProbes, tool } from './helpers/elf';
import { buildGo, noGo } from './helpers/go';
import { mulberry32 } from './helpers/random';

type Hooks = Required<Pick<NativeInternals, 'elfSymbolAt' | 'elfUnwindRuleAt' | 'elfInfo' | 'inflateZlib'>>;
const hooks = (): Hooks => binding().internals as never;
const HOST: ElfMachine = process.arch === 'arm64' ? 'arm64' : 'x64';

function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-elf-go-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The section's [offset, size) in the file, from readelf -S. */
function sectionOf(file: string, name: string): { offset: number; size: number; flags: string } {
  const escaped = name.replace(/\./g, '\\.');
  const match = new RegExp(`\\]\\s+${escaped}\\s+\\S+\\s+[0-9a-f]+\\s+([0-9a-f]+)\\s+([0-9a-f]+)\\s+[0-9a-f]+\\s+(\\S*)`).exec(tool('readelf', ['-SW', file]));
  if (!match) throw new Error(`${file} has no ${name}`);
  return { offset: parseInt(match[1]!, 16), size: parseInt(match[2]!, 16), flags: match[3]! };
}

/** Go's .debug_frame has no rule for the frame pointer: the pclntab's, per machine (see elf_gopclntab.cc). */
function goFrameRule(expected: ElfUnwindRule, machine: ElfMachine): ElfUnwindRule {
  const framed = machine === 'x64' ? expected.cfaOffset > 8 : expected.cfaOffset > 0;
  if (!framed) return expected;
  return { ...expected, fp: 'cfa', fpOffset: machine === 'x64' ? -16 : -expected.cfaOffset - 8 };
}

if (process.platform !== 'linux') t.plan(0, 'the ELF reader is Linux only');
else elfGoTests();

function elfGoTests(): void {
  t.test('the inflater against Node zlib: every block type and level; refusals of what is wrong', (t) => {
    const random = mulberry32(7);
    const text = Buffer.from(fs.readFileSync(__filename, 'utf8').repeat(4));
    const noise = Buffer.from(Array.from({ length: 70000 }, () => Math.floor(random() * 256)));
    const { Z_FIXED, Z_HUFFMAN_ONLY, Z_RLE, Z_FILTERED } = zlib.constants;
    for (const [label, data] of [['text', text], ['noise', noise], ['empty', Buffer.alloc(0)], ['one byte', Buffer.from([0xa5])]] as const) {
      for (const [level, strategy] of [[0, 0], [1, 0], [6, 0], [9, 0], [6, Z_FIXED], [6, Z_HUFFMAN_ONLY], [6, Z_RLE], [6, Z_FILTERED]] as const) {
        const packed = zlib.deflateSync(data, { level, strategy });
        const out = hooks().inflateZlib(packed, data.length);
        t.ok(out !== null && out.equals(data), `${label}, level ${level}, strategy ${strategy}`);
      }
    }
    const packed = zlib.deflateSync(text);
    t.equal(hooks().inflateZlib(packed, text.length - 1), null, 'more bytes than the header promised');
    t.equal(hooks().inflateZlib(packed, text.length + 1), null, 'fewer');
    t.equal(hooks().inflateZlib(packed.subarray(0, packed.length - 1), text.length), null, 'a cut checksum');
    const badSum = Buffer.from(packed);
    badSum[badSum.length - 1]! ^= 1;
    t.equal(hooks().inflateZlib(badSum, text.length), null, 'a wrong checksum');
    t.equal(hooks().inflateZlib(zlib.deflateRawSync(text), text.length), null, 'no zlib header');
    t.equal(hooks().inflateZlib(zlib.gzipSync(text), text.length), null, 'gzip is not zlib');
    t.equal(hooks().inflateZlib(Buffer.from([0x78, 0x9c, 0x07]), 1), null, 'block type 3');
    // Mutations: a refusal or the right bytes, never a crash (ASan runs this too).
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const source = i % 2 ? text : noise;
      const bytes = Buffer.from(zlib.deflateSync(source.subarray(0, 5000), { strategy: i % 3 === 0 ? Z_FIXED : 0 }));
      for (let k = 0; k < 1 + (i % 4); k++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      const out = hooks().inflateZlib(bytes, 5000);
      if (out === null) refused++;
      else t.ok(out.equals(source.subarray(0, 5000)), `mutation ${i} passed its checksum: the bytes are right`);
    }
    t.ok(refused > 250, `${refused} of 300 mutated streams refused`);
    t.end();
  });

  t.test('a .debug_frame compressed in place (objcopy --compress-debug-sections=zlib) reads as readelf shows it', async (t) => {
    const built = await buildElf('elf-functions.c', ['-O2', '-fno-asynchronous-unwind-tables', '-g']);
    const dir = tempDir(t);
    const compressed = path.join(dir, 'zlib');
    tool('objcopy', ['--compress-debug-sections=zlib', built, compressed]);
    t.match(sectionOf(compressed, '.debug_frame').flags, /C/, 'SHF_COMPRESSED');
    const fdes = readelfFrames(compressed).filter((f) => f.section === '.debug_frame');
    t.ok(fdes.length > 5, `${fdes.length} FDEs`);
    const probes = fdes.flatMap(rowProbes);
    const rules = hooks().elfUnwindRuleAt('', compressed, probes.map((p) => p.address), HOST);
    const wrong = probes.filter((p, i) => JSON.stringify(rules[i]) !== JSON.stringify(expectedRule(p.row.columns, HOST)));
    t.same(wrong.slice(0, 5), [], `${probes.length} addresses match readelf`);
    t.equal(hooks().elfInfo('', compressed).hasUnwindInfo, true);
    // zstd is another compression: not read, and so no rule rather than a wrong one.
    const zstd = path.join(dir, 'zstd');
    tool('objcopy', ['--compress-debug-sections=zstd', built, zstd]);
    t.same(hooks().elfUnwindRuleAt('', zstd, probes.slice(0, 20).map((p) => p.address), HOST), new Array(20).fill(null));
  });

  t.test('Go pclntab: the rule at every row of the .debug_frame Go derives from it, x86_64 and arm64', { skip: noGo }, async (t) => {
    for (const [arch, machine] of [['amd64', 'x64'], ['arm64', 'arm64']] as const) {
      const file = await buildGo('minimal', { arch });
      t.match(sectionOf(file, '.debug_frame').flags, /C/, `${arch}: Go compresses its .debug_frame`);
      const fdes = readelfFrames(file).filter((f) => f.section === '.debug_frame');
      const probes = fdes.flatMap(rowProbes);
      const rules = hooks().elfUnwindRuleAt('', file, probes.map((p) => p.address), machine);
      const symbols = hooks().elfSymbolAt('', file, probes.map((p) => p.address), machine);
      const wrong: string[] = [];
      const ends = new Set<string>();
      probes.forEach((probe, i) => {
        const rule = rules[i]!;
        // A CFA below sp (readelf "sp-16": asyncPreempt, debugCallV2 while they unwind
        // their own pushes) is no frame the table describes; the CFI's rule stands there.
        if (/^sp-/.test(probe.row.columns.CFA ?? '')) return;
        if (rule?.ra === 'undefined') {
          ends.add(symbols[i]!.name);
          return;
        }
        const expected = expectedRule(probe.row.columns, machine);
        if (JSON.stringify(rule) !== JSON.stringify(expected && goFrameRule(expected, machine)))
          wrong.push(`${symbols[i]?.name}+${symbols[i]?.offset} 0x${probe.address.toString(16)} ${JSON.stringify(probe.row.columns)}: ${JSON.stringify(rule)}`);
      });
      t.same(wrong.slice(0, 10), [], `${arch}: ${probes.length} addresses in ${fdes.length} functions match readelf`);
      // TOPFRAME and SPWRITE functions end a walk: the stack's own end, or a switch to another stack.
      for (const name of ['runtime.mcall', 'runtime.systemstack', 'runtime.goexit', 'runtime.mstart'])
        t.ok(ends.has(name) || ends.has(`${name}.abi0`), `${arch}: ${name} ends a walk`);
      t.notOk([...ends].some((name) => name.startsWith('main.') || name.startsWith('syscall.') || name === 'runtime.futexsleep'), `${arch}: no ordinary function does (${ends.size} do)`);
    }
  });

  t.test("Go pclntab: the frame pointer's slot matches every prologue objdump shows", { skip: noGo }, async (t) => {
    const cases = [
      {
        arch: 'amd64' as const,
        machine: 'x64' as ElfMachine,
        objdump: 'objdump',
        // sub $0xN,%rsp; mov %rbp,0xM(%rsp): the caller's rbp at the new sp + N - 8, CFA - 16.
        first: /^sub\s+\$0x([0-9a-f]+),%rsp$/,
        second: (n: number) => new RegExp(`^mov\\s+%rbp,0x${(n - 8).toString(16)}\\(%rsp\\)$`),
        rule: (n: number): ElfUnwindRule => ({ cfaBase: 'sp', cfaOffset: n + 8, ra: 'cfa', raOffset: -8, fp: 'cfa', fpOffset: -16 }),
      },
      {
        arch: 'arm64' as const,
        machine: 'arm64' as ElfMachine,
        objdump: 'aarch64-linux-gnu-objdump',
        // str x30, [sp, #-N]!; stur x29, [sp, #-8]: the return address at the new sp, x29 below it.
        first: /^str\s+x30, \[sp, #-(\d+)\]!$/,
        second: () => /^stur\s+x29, \[sp, #-8\]$/,
        rule: (n: number): ElfUnwindRule => ({ cfaBase: 'sp', cfaOffset: n, ra: 'cfa', raOffset: -n, fp: 'cfa', fpOffset: -n - 8 }),
      },
    ];
    for (const c of cases) {
      const file = await buildGo('minimal', { arch: c.arch });
      let out: string;
      try {
        out = tool(c.objdump, ['-d', '--no-show-raw-insn', file]);
      } catch {
        t.comment(`skipped: ${c.objdump} is not installed`);
        continue;
      }
      // Without objdump's comments ("# 0x…" on x86_64, "// #…" on arm64) and symbol notes.
      const lines = [...out.matchAll(/^\s*([0-9a-f]+):\s+(.*?)\s*$/gm)].map((m) => ({
        address: BigInt(`0x${m[1]}`),
        text: m[2]!.replace(/\s+(#|\/\/)\s.*$/, '').replace(/\s+<.*>$/, ''),
      }));
      const probes: Array<{ address: bigint; rule: ElfUnwindRule }> = [];
      for (let i = 0; i + 2 < lines.length; i++) {
        const first = c.first.exec(lines[i]!.text);
        if (!first) continue;
        const n = c.arch === 'amd64' ? parseInt(first[1]!, 16) : Number(first[1]);
        if (c.second(n).test(lines[i + 1]!.text)) probes.push({ address: lines[i + 2]!.address, rule: c.rule(n) });
      }
      t.ok(probes.length > 300, `${c.arch}: ${probes.length} prologues`);
      const rules = hooks().elfUnwindRuleAt('', file, probes.map((p) => p.address), c.machine);
      const wrong = probes.filter((p, i) => rules[i]!.ra !== 'undefined' && JSON.stringify(rules[i]) !== JSON.stringify(p.rule));
      t.same(wrong.slice(0, 5).map((p) => `0x${p.address.toString(16)}`), [], `${c.arch}: after each prologue, the rule says where it saved the frame pointer`);
    }
  });

  t.test("a stripped Go program: named and unwound from its pclntab alone; a PIE's table too", { skip: noGo }, async (t) => {
    const built = await buildGo('parked');
    const dir = tempDir(t);
    const stripped = path.join(dir, 'parked');
    tool('objcopy', ['--strip-all', built, stripped]);
    t.throws(() => sectionOf(stripped, '.symtab'), 'no .symtab');
    t.equal(hooks().elfInfo('', stripped, HOST).hasSymbols, true);
    t.equal(hooks().elfInfo('', stripped, HOST).hasUnwindInfo, true);
    const functions = nmFunctions(built).filter((s) => /^[A-Za-z_][\w./]*/.test(s.name) && !s.name.startsWith('go:'));
    t.ok(functions.length > 1000, `${functions.length} functions`);
    const addresses = functions.flatMap((s) => [s.address, s.address + s.size - 1n]);
    const names = hooks().elfSymbolAt('', stripped, addresses, HOST);
    const wrongNames = functions.filter((s, i) => {
      const [start, last] = [names[i * 2], names[i * 2 + 1]];
      // The pclntab spells assembly functions without .abi0, and array lengths in generated names as [...].
      const bare = s.name.replace(/\.abi0$/, '').replace(/\[\d+\]/g, '[...]');
      return start?.name !== bare || start.offset !== 0 || last?.name !== bare || last.offset !== Number(s.size - 1n);
    });
    t.same(wrongNames.slice(0, 5).map((s) => s.name), [], 'every function nm names in the unstripped build, without .abi0');
    const probes = addresses.map((a) => a + 1n);
    t.same(hooks().elfUnwindRuleAt('', stripped, probes, HOST), hooks().elfUnwindRuleAt('', built, probes, HOST), 'the same rules as unstripped');
    // -ldflags='-s -w', as release builds are made: no .symtab, no DWARF at all.
    const released = await buildGo('parked', { ldflags: '-s -w' });
    const entry = BigInt(/Entry point address:\s+0x([0-9a-f]+)/.exec(tool('readelf', ['-h', released]))![1]!.replace(/^/, '0x'));
    t.same(hooks().elfSymbolAt('', released, [entry], HOST), [{ name: '_rt0_amd64_linux'.replace('amd64', HOST === 'x64' ? 'amd64' : 'arm64'), offset: 0 }]);
    // What a PIE changes, on copies of this build (a PIE build recompiles all of std, half a
    // minute): the table in .data.rel.ro.gopclntab, and its runtime.text word left 0 in the
    // file where an external linker relocates it at load time (then .text's address serves).
    const some = functions.filter((_, i) => i % 50 === 0);
    const expected = hooks().elfSymbolAt('', built, some.map((s) => s.address + 1n), HOST);
    const relro = path.join(dir, 'relro');
    tool('objcopy', ['--strip-all', '--rename-section', '.gopclntab=.data.rel.ro.gopclntab', built, relro]);
    t.same(hooks().elfSymbolAt('', relro, some.map((s) => s.address + 1n), HOST), expected.map((s) => s && { ...s, name: s.name.replace(/\.abi0$/, '').replace(/\[\d+\]/g, '[...]') }), '.data.rel.ro.gopclntab');
    const unrelocated = Buffer.from(fs.readFileSync(stripped));
    const table = sectionOf(stripped, '.gopclntab');
    t.not(unrelocated.readBigUInt64LE(table.offset + 8 + 2 * 8), 0n, 'Go wrote runtime.text');
    unrelocated.writeBigUInt64LE(0n, table.offset + 8 + 2 * 8);
    fs.writeFileSync(path.join(dir, 'unrelocated'), unrelocated);
    t.same(hooks().elfSymbolAt('', path.join(dir, 'unrelocated'), some.map((s) => s.address + 1n), HOST), hooks().elfSymbolAt('', relro, some.map((s) => s.address + 1n), HOST), 'runtime.text from .text');
  });

  t.test('Go pclntab and compressed sections, mutated: results of the right shape, never a crash', { skip: noGo }, async (t) => {
    const built = await buildGo('parked');
    const bytes = fs.readFileSync(built);
    const regions = [sectionOf(built, '.gopclntab'), sectionOf(built, '.debug_frame')];
    const functions = nmFunctions(built);
    const addresses = functions.filter((_, i) => i % 40 === 0).flatMap((s) => [s.address, s.address + s.size / 2n]);
    const dir = tempDir(t);
    const random = mulberry32(11);
    const failures: string[] = [];
    for (let i = 0; i < 60; i++) {
      const copy = Buffer.from(bytes);
      const region = regions[i % 2]!;
      // The header and function table first: the bytes every lookup reads.
      const span = i % 4 < 2 ? Math.min(region.size, 4096) : region.size;
      for (let k = 0; k < 1 + (i % 6); k++) copy[region.offset + Math.floor(random() * span)] = Math.floor(random() * 256);
      const file = path.join(dir, `case${i % 4}`);
      fs.writeFileSync(file, copy);
      try {
        for (const symbol of hooks().elfSymbolAt('', file, addresses, HOST)) if (symbol !== null && typeof symbol.name !== 'string') throw new Error(JSON.stringify(symbol));
        for (const rule of hooks().elfUnwindRuleAt('', file, addresses, HOST)) {
          if (rule !== null && !(['sp', 'fp'].includes(rule.cfaBase) && Number.isFinite(rule.cfaOffset) && Number.isFinite(rule.fpOffset)))
            throw new Error(JSON.stringify(rule));
        }
      } catch (error) {
        failures.push(`case ${i}: ${(error as Error).message}`);
      }
    }
    t.same(failures, []);
  });
}
