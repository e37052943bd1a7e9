/**
 * The ELF reader behind Linux user stacks (native/linux/elf_file.cc, elf_cfi.cc),
 * through the addon's test hooks, against real programs compiled here and the system
 * C library, with nm and readelf run in the same test as the peers.
 */
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { binding, type ElfMachine, type NativeInternals } from '../src/native';
import { buildElf, expectedRule, nmFunctions, readelfFrames, rowProbes, systemLibc, type FrameDescription, tool } from './helpers/elf';


function hooks(): Required<Pick<NativeInternals, 'elfSymbolAt' | 'elfUnwindRuleAt' | 'elfAddressOfFileOffset' | 'elfInfo'>> {
  return binding().internals as never;
}

const HOST: ElfMachine = process.arch === 'arm64' ? 'arm64' : 'x64';

function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-elf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every defined function nm lists is found at its first and last byte, with the right offset. */
function checkSymbols(t: Test, root: string, file: string, symbols: ReturnType<typeof nmFunctions>, machine: ElfMachine = HOST): void {
  const names = new Map<bigint, Set<string>>();
  for (const s of symbols) names.set(s.address, (names.get(s.address) ?? new Set()).add(s.name));
  const sized = symbols.filter((s) => s.size > 0n);
  const addresses = sized.flatMap((s) => [s.address, s.address + s.size - 1n]);
  const found = hooks().elfSymbolAt(root, file, addresses, machine);
  const wrong: string[] = [];
  sized.forEach((s, i) => {
    for (const [k, offset] of [[0, 0], [1, Number(s.size - 1n)]] as const) {
      const got = found[i * 2 + k];
      // An alias at the same address names it as well; nm's names are without a version.
      if (!got || got.offset !== offset || !names.get(s.address)!.has(got.name.replace(/@.*$/, ''))) wrong.push(`${s.name}+${offset}: ${JSON.stringify(got)}`);
    }
  });
  t.same(wrong, [], `${sized.length} functions of ${path.basename(file)} named at their first and last byte`);
}

/** The rule at each row's first and last byte of `fdes` equals readelf's row. */
function checkRules(t: Test, file: string, fdes: FrameDescription[], machine: ElfMachine, what: string): number {
  const probes = fdes.flatMap(rowProbes);
  const rules = hooks().elfUnwindRuleAt('', file, probes.map((p) => p.address), machine);
  const wrong: string[] = [];
  probes.forEach((probe, i) => {
    const expected = expectedRule(probe.row.columns, machine);
    if (JSON.stringify(rules[i]) !== JSON.stringify(expected))
      wrong.push(`0x${probe.address.toString(16)} ${JSON.stringify(probe.row.columns)}: ${JSON.stringify(rules[i])}`);
  });
  t.same(wrong.slice(0, 20), [], `${probes.length} addresses of ${what} match readelf`);
  return probes.length;
}

function run(): void {
  const fpBuild = buildElf('elf-functions.c', ['-O0', '-fno-omit-frame-pointer', '-Wl,--build-id=sha1']);
  const noFpBuild = buildElf('elf-functions.c', ['-O2', '-fomit-frame-pointer']);

  t.test('symbols: every function nm lists, with and without frame pointers', async (t) => {
    for (const file of [await fpBuild, await noFpBuild]) {
      const symbols = nmFunctions(file);
      t.ok(symbols.some((s) => s.type === 'i') && symbols.some((s) => s.type === 'W') && symbols.some((s) => s.type === 't'), 'ifunc, weak and local functions are among them');
      checkSymbols(t, '', file, symbols);
      t.equal(hooks().elfInfo('', file).hasSymbols, true);
    }
  });

  t.test('symbols: a size-0 function names only the bytes before the next symbol, and only in code', async (t) => {
    const file = await fpBuild;
    const out = tool('nm', ['--defined-only', file]);
    const addressOf = (name: string): bigint => BigInt(`0x${new RegExp(`^([0-9a-f]+) [TR] ${name}$`, 'm').exec(out)![1]}`);
    const bare = addressOf('elf_bare_asm');
    const marker = addressOf('elf_text_marker');
    const after = addressOf('elf_after_bare');
    const inData = addressOf('elf_function_in_data');
    t.ok(marker > bare + 1n && after > marker + 1n, 'the size-0 symbol and the marker have bytes of their own');
    const got = hooks().elfSymbolAt('', file, [bare, marker - 1n, marker, marker + 1n, after, inData, inData + 1n]);
    t.same(got[0], { name: 'elf_bare_asm', offset: 0 });
    t.same(got[1], { name: 'elf_bare_asm', offset: Number(marker - 1n - bare) });
    t.same(got.slice(2, 4), [null, null], 'not past a symbol that starts after it');
    t.same(got[4], { name: 'elf_after_bare', offset: 0 });
    t.same(got.slice(5), [null, null], 'a size-0 function symbol outside executable sections names nothing');
    t.same(hooks().elfSymbolAt('', file, [0, 1, 2n ** 64n - 1n]), [null, null, null], 'no function at 0 or the top of memory');
  });

  t.test('symbols: the system C library through .dynsym (nm -D as the peer)', (t) => {
    const libc = systemLibc();
    const dynamic = nmFunctions(libc, true);
    t.ok(dynamic.length > 500, `${dynamic.length} exported functions`);
    // With a .symtab (an unstripped libc) that table wins and names more; both agree on these.
    checkSymbols(t, '', libc, dynamic);
    t.end();
  });

  const libcDebugFile = hooks().elfInfo('', systemLibc()).debugFile;
  const noLibcDebugFile = libcDebugFile === '' && 'no debug file for the C library here (Debian: apt-get install libc6-dbg)';
  t.test('symbols: the system C library names its local functions through its debug file, found by build id', { skip: noLibcDebugFile }, (t) => {
    const libc = systemLibc();
    const info = hooks().elfInfo('', libc);
    t.match(info.debugFile, /^\/usr\/lib\/debug\/\.build-id\/[0-9a-f]{2}\/[0-9a-f]+\.debug$/);
    const all = nmFunctions(info.debugFile);
    const exported = new Set(nmFunctions(libc, true).map((s) => s.address));
    t.ok(all.filter((s) => !exported.has(s.address)).length > 1000, 'many functions .dynsym does not have');
    checkSymbols(t, '', libc, all);
    t.end();
  });

  t.test('AddressOfFileOffset follows the PT_LOAD segments readelf lists', async (t) => {
    const file = await noFpBuild;
    const out = tool('readelf', ['-lW', file]);
    const loads = [...out.matchAll(/^\s+LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+)/gm)].map((m) => m.slice(1).map((v) => BigInt(`0x${v}`)));
    t.ok(loads.length >= 2, `${loads.length} PT_LOAD segments`);
    for (const [offset, vaddr, filesz] of loads) {
      const got = hooks().elfAddressOfFileOffset('', file, [offset, offset + filesz - 1n]);
      t.same(got, [vaddr, vaddr + filesz - 1n], `segment at file offset 0x${offset.toString(16)}`);
    }
    const end = loads.reduce((max, [offset, , filesz]) => (offset + filesz > max ? offset + filesz : max), 0n);
    t.same(hooks().elfAddressOfFileOffset('', file, [end + 0x100000n]), [null], 'past every segment');
  });

  t.test('unwind rules match readelf in every row of every FDE (.eh_frame through .eh_frame_hdr)', async (t) => {
    const fpFile = await fpBuild;
    const noFpFile = await noFpBuild;
    for (const [file, what] of [[fpFile, 'the -O0 -fno-omit-frame-pointer build'], [noFpFile, 'the -O2 -fomit-frame-pointer build']] as const) {
      const fdes = readelfFrames(file).filter((f) => f.section === '.eh_frame');
      t.ok(fdes.length > 5, `${fdes.length} FDEs in ${what}`);
      checkRules(t, file, fdes, HOST, what);
      t.equal(hooks().elfInfo('', file).hasUnwindInfo, true);
    }
    // The frame-pointer build's functions set the CFA on rbp after the prologue;
    // the other keeps it on rsp: both forms were checked above.
    const fpRows = readelfFrames(fpFile).flatMap((f) => f.rows.map((r) => r.columns.CFA));
    t.ok(fpRows.some((cfa) => /^(rbp|x29)\+/.test(cfa)), 'the frame-pointer build has CFA-on-fp rows');
    const outside = hooks().elfUnwindRuleAt('', fpFile, [0, 2n ** 64n - 1n]);
    t.same(outside, [null, null], 'no FDE covers 0 or the top of memory');
  });

  t.test('every CFA instruction, hand-written, with and without .eh_frame_hdr (x86_64)', { skip: HOST !== 'x64' && 'x86_64 assembly' }, async (t) => {
    for (const [flags, what] of [
      [[], 'without .eh_frame_hdr (the FDE index)'],
      [['-Wl,--eh-frame-hdr'], 'with .eh_frame_hdr'],
    ] as const) {
      const file = await buildElf('elf-cfi.S', ['-nostdlib', '-static', ...flags]);
      const sections = tool('readelf', ['-SW', file]);
      t.equal(sections.includes('.eh_frame_hdr'), flags.length > 0, `${what}: the section is there or not`);
      const fdes = readelfFrames(file).filter((f) => f.section === '.eh_frame');
      const rows = fdes.flatMap((f) => f.rows);
      // The rows cover what the reader must refuse as well as what it must give.
      for (const [column, value] of [['ra', 'r0'], ['ra', 'v-8'], ['ra', 's'], ['CFA', 'exp'], ['CFA', 'rax+8'], ['rbp', 'exp'], ['rbp', 'c+16']])
        t.ok(rows.some((r) => r.columns[column] === value), `${what}: a row with ${column} ${value}`);
      checkRules(t, file, fdes, 'x64', `the hand-written CFI ${what}`);
      const undefinedRa = hooks().elfUnwindRuleAt('', file, [fdes[0].start])[0];
      t.same(undefinedRa, { cfaBase: 'sp', cfaOffset: 8, ra: 'undefined', raOffset: 0, fp: 'same', fpOffset: 0 }, '_start: the outermost frame');
    }
  });

  t.test('without section headers: CFI through PT_GNU_EH_FRAME, no symbols', async (t) => {
    const built = await fpBuild;
    const dir = tempDir(t);
    const file = path.join(dir, 'no-sections');
    const bytes = fs.readFileSync(built);
    // e_shoff, e_shnum and e_shstrndx to 0, as sstrip leaves a program.
    bytes.writeBigUInt64LE(0n, 0x28);
    bytes.writeUInt16LE(0, 0x3c);
    bytes.writeUInt16LE(0, 0x3e);
    fs.writeFileSync(file, bytes);
    t.match(tool('readelf', ['-hW', file]), /Number of section headers:\s+0/);
    checkRules(t, file, readelfFrames(built).filter((f) => f.section === '.eh_frame'), HOST, 'the program without section headers');
    t.same(hooks().elfInfo('', file), { hasSymbols: false, hasUnwindInfo: true, debugFile: '' });
    const functions = nmFunctions(built);
    t.same(hooks().elfSymbolAt('', file, functions.map((s) => s.address)), functions.map(() => null));
  });

  t.test('.eh_frame without .eh_frame_hdr (-Wl,--no-eh-frame-hdr): the FDE index', async (t) => {
    const file = await buildElf('elf-functions.c', ['-O2', '-Wl,--no-eh-frame-hdr']);
    t.notMatch(tool('readelf', ['-SW', file]), /eh_frame_hdr/);
    checkRules(t, file, readelfFrames(file).filter((f) => f.section === '.eh_frame'), HOST, 'the program without .eh_frame_hdr');
  });

  t.test('unwind rules of the system C library match readelf (a spread of its FDEs)', (t) => {
    const libc = systemLibc();
    const fdes = readelfFrames(libc).filter((f) => f.section === '.eh_frame');
    t.ok(fdes.length > 1000, `${fdes.length} FDEs`);
    const step = Math.max(1, Math.floor(fdes.length / 300));
    const count = checkRules(t, libc, fdes.filter((_, i) => i % step === 0), HOST, 'libc');
    t.ok(count > 600, `${count} addresses checked`);
    t.end();
  });

  t.test('no unwind tables: no rule, and no unwind information without start files', async (t) => {
    const file = await buildElf('elf-functions.c', ['-O1', '-fno-asynchronous-unwind-tables', '-fno-unwind-tables']);
    const functions = nmFunctions(file).filter((s) => s.name.startsWith('elf_'));
    const rules = hooks().elfUnwindRuleAt('', file, functions.map((s) => s.address));
    t.same(rules, functions.map(() => null), `${functions.length} functions without CFI`);
    // The C library's start files bring their own CFI; with none of them, nothing remains.
    const bare = await buildElf('elf-nostdlib.c', ['-O1', '-nostdlib', '-static', '-fno-asynchronous-unwind-tables', '-fno-unwind-tables']);
    t.same(hooks().elfInfo('', bare), { hasSymbols: true, hasUnwindInfo: false, debugFile: '' });
    const withTables = await buildElf('elf-nostdlib.c', ['-O1', '-nostdlib', '-static', '-fasynchronous-unwind-tables']);
    t.equal(hooks().elfInfo('', withTables).hasUnwindInfo, true, 'the same program with tables has them');
  });

  t.test('.debug_frame alone is read (-fno-asynchronous-unwind-tables -g)', async (t) => {
    const file = await buildElf('elf-functions.c', ['-O2', '-fno-asynchronous-unwind-tables', '-g']);
    const fdes = readelfFrames(file);
    const debugFdes = fdes.filter((f) => f.section === '.debug_frame');
    t.ok(debugFdes.length >= 5, `${debugFdes.length} FDEs in .debug_frame`);
    checkRules(t, file, debugFdes, HOST, '.debug_frame');
  });

  t.test('a stripped program names its functions through its .gnu_debuglink file; a wrong CRC is refused', async (t) => {
    const built = await buildElf('elf-functions.c', ['-O2', '-fno-asynchronous-unwind-tables', '-g']);
    for (const layout of ['beside', '.debug', '/usr/lib/debug'] as const) {
      const root = tempDir(t);
      const bin = path.join(root, 'opt', 'app');
      fs.mkdirSync(bin, { recursive: true });
      const debugDir = layout === 'beside' ? bin : layout === '.debug' ? path.join(bin, '.debug') : path.join(root, 'usr/lib/debug/opt/app');
      fs.mkdirSync(debugDir, { recursive: true });
      const debugFile = path.join(debugDir, 'prog.debug');
      tool('objcopy', ['--only-keep-debug', built, debugFile]);
      // --add-gnu-debuglink reads the debug file for its CRC; no build id, so the link is what finds it.
      tool('objcopy', ['--strip-all', '--remove-section=.note.gnu.build-id', `--add-gnu-debuglink=${debugFile}`, built, path.join(bin, 'prog')]);
      const symbols = nmFunctions(built).filter((s) => s.name.startsWith('elf_'));
      const info = hooks().elfInfo(root, '/opt/app/prog');
      t.equal(info.debugFile, path.relative(root, debugFile).replace(/^/, '/'), `${layout}: the debug file, as the target sees it`);
      t.equal(info.hasSymbols, true);
      t.equal(info.hasUnwindInfo, true, `${layout}: .debug_frame of the debug file`);
      checkSymbols(t, root, '/opt/app/prog', symbols);
      const fdes = readelfFrames(debugFile).filter((f) => f.section === '.debug_frame');
      const probes = fdes.flatMap(rowProbes);
      const rules = hooks().elfUnwindRuleAt(root, '/opt/app/prog', probes.map((p) => p.address));
      t.same(rules, probes.map((p) => expectedRule(p.row.columns, HOST)), `${layout}: rules from the debug file's .debug_frame`);

      // One byte more: another CRC, so the file is not the one the link names.
      fs.appendFileSync(debugFile, '\0');
      const refused = hooks().elfInfo(root, '/opt/app/prog');
      t.equal(refused.debugFile, '', `${layout}: a debug file with the wrong CRC is refused`);
      t.same(hooks().elfSymbolAt(root, '/opt/app/prog', [symbols[0].address]), [null]);
    }
  });

  t.test('a debug file found by build id under root; one with another build id is refused', async (t) => {
    const built = await fpBuild;
    const other = await buildElf('elf-functions.c', ['-O1', '-Wl,--build-id=md5']);
    const notes = tool('readelf', ['-n', built]);
    const id = /Build ID: ([0-9a-f]+)/.exec(notes)![1];
    const root = tempDir(t);
    fs.mkdirSync(path.join(root, 'bin'));
    tool('objcopy', ['--strip-all', built, path.join(root, 'bin/prog')]);
    const target = `/usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
    fs.mkdirSync(path.dirname(path.join(root, target)), { recursive: true });
    tool('objcopy', ['--only-keep-debug', other, path.join(root, target)]);
    t.equal(hooks().elfInfo(root, '/bin/prog').debugFile, '', 'a file at the path whose build id differs is refused');
    tool('objcopy', ['--only-keep-debug', built, path.join(root, target)]);
    t.equal(hooks().elfInfo(root, '/bin/prog').debugFile, target);
    checkSymbols(t, root, '/bin/prog', nmFunctions(built).filter((s) => s.name.startsWith('elf_')));
  });

  t.test('arm64: x29/x30 rules of a static aarch64 program match readelf', async (t) => {
    const file = await buildElf(
      'elf-nostdlib.c',
      ['--target=aarch64-linux-gnu', '-O1', '-nostdlib', '-static', '-fuse-ld=lld', '-fasynchronous-unwind-tables', '-fno-omit-frame-pointer'],
      'clang-14',
    );
    const fdes = readelfFrames(file).filter((f) => f.section === '.eh_frame');
    t.ok(fdes.length >= 2, `${fdes.length} FDEs`);
    checkRules(t, file, fdes, 'arm64', 'the arm64 program');
    const framed = nmFunctions(file).find((s) => s.name === 'elf_framed')!;
    const [entry] = hooks().elfUnwindRuleAt('', file, [framed.address], 'arm64');
    t.same(entry, { cfaBase: 'sp', cfaOffset: 0, ra: 'lr', raOffset: 0, fp: 'same', fpOffset: 0 }, 'at entry the return address is in x30');
    const saved = hooks().elfUnwindRuleAt('', file, [framed.address + framed.size - 8n], 'arm64')[0];
    t.match(saved, { ra: 'cfa', fp: 'cfa' }, 'after the prologue x29 and x30 are saved at the CFA');
    checkSymbols(t, '', file, nmFunctions(file), 'arm64');
    t.throws(() => hooks().elfInfo('', file, 'x64'), { code: 'EINVAL' }, 'an arm64 file is not an x86_64 one');
  });

  t.test('arm64: pointer authentication (CIE augmentation B, DW_CFA_AARCH64_negate_ra_state) and .debug_frame', async (t) => {
    const common = ['--target=aarch64-linux-gnu', '-O1', '-nostdlib', '-static', '-fuse-ld=lld', '-fno-omit-frame-pointer'];
    const signed = await buildElf('elf-nostdlib.c', [...common, '-fasynchronous-unwind-tables', '-mbranch-protection=pac-ret+leaf+b-key'], 'clang-14');
    t.match(tool('readelf', ['--debug-dump=frames', signed]), /Augmentation:\s+"zRB"[\s\S]*DW_CFA_AARCH64_negate_ra_state/, 'the CFI signs the return address');
    checkRules(t, signed, readelfFrames(signed).filter((f) => f.section === '.eh_frame'), 'arm64', 'the pointer-authenticated arm64 program');
    const debugOnly = await buildElf('elf-nostdlib.c', [...common, '-fno-asynchronous-unwind-tables', '-fno-unwind-tables', '-g'], 'clang-14');
    const fdes = readelfFrames(debugOnly).filter((f) => f.section === '.debug_frame');
    t.ok(fdes.length >= 2, `${fdes.length} FDEs in .debug_frame`);
    checkRules(t, debugOnly, fdes, 'arm64', 'the arm64 .debug_frame');
  });

  t.test('open errors', async (t) => {
    const dir = tempDir(t);
    t.throws(() => hooks().elfInfo(dir, '/missing'), { code: 'ENOENT' });
    fs.writeFileSync(path.join(dir, 'text'), 'not an ELF file\n');
    t.throws(() => hooks().elfInfo(dir, '/text'), { code: 'EINVAL' });
    t.throws(() => hooks().elfInfo(dir, ''), { code: 'EINVAL' }, 'a directory');
    tool('mkfifo', [path.join(dir, 'fifo')]);
    t.throws(() => hooks().elfInfo(dir, '/fifo'), { code: 'EINVAL' }, 'a fifo with no writer does not block');
    t.throws(() => hooks().elfInfo('', '/dev/null'), { code: 'EINVAL' }, 'a device');
    const file = await noFpBuild;
    t.throws(() => hooks().elfInfo('', file, HOST === 'x64' ? 'arm64' : 'x64'), { code: 'EINVAL' }, 'another machine');
    t.throws(() => hooks().elfInfo('', file, 'sparc' as never), { code: 'EINVAL' });
    t.throws(() => hooks().elfSymbolAt('', file, 'no' as never), { code: 'EINVAL' });
    t.throws(() => hooks().elfSymbolAt('', file, ['x' as never]), { code: 'EINVAL' });
    t.throws(() => hooks().elfInfo(1 as never, file), { code: 'EINVAL' });
  });
}

if (process.platform !== 'linux') {
  t.pass('the ELF reader is Linux only');
} else {
  run();
}
