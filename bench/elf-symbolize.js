#!/usr/bin/env node
/*
 * Symbolizing addresses of the system C library: the ELF reader behind Linux user
 * stacks (native/linux/elf_file.cc, through internals.elfSymbolAt) against
 * `addr2line -f -e libc` (binutils, the tool a user would otherwise run), in one run,
 * both on a copy of libc without its build id and debug link (so both name from its
 * .dynsym, not addr2line from DWARF),
 * on the same N addresses (random bytes inside libc's exported functions, so both
 * name them from the same symbols; the names are compared too).
 *   Each side's time includes opening the file and reading its symbol table once, then
 *   naming all N addresses: what one stack walk's symbolization of a library costs.
 *                                               budget: ours ≤ addr2line's time at every N
 * Times are the minimum (and median) of 5 runs. Ratio: addr2line / ours.
 *
 * Build first:  npm run build
 * Run:          node bench/elf-symbolize.js [--n N]      (Linux only)
 * Exit code 1 when the budget is missed or the names disagree.
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { binding } = require('../lib/native');

if (process.platform !== 'linux') {
  console.log('elf-symbolize: Linux only');
  process.exit(0);
}
const at = process.argv.indexOf('--n');
const SIZES = at > 0 ? [Number(process.argv[at + 1])] : [100, 1000, 10000];
const RUNS = 5;

const maps = fs.readFileSync('/proc/self/maps', 'utf8');
const libc = /\s(\/\S*\/libc\.so\.6)$/m.exec(maps)[1];
const functions = execFileSync('nm', ['-D', '--defined-only', '-S', libc], { encoding: 'utf8', maxBuffer: 1 << 26 })
  .split('\n')
  .map((line) => /^([0-9a-f]+) ([0-9a-f]+) [TtiW] /.exec(line))
  .filter((m) => m && parseInt(m[2], 16) > 0)
  .map((m) => ({ address: parseInt(m[1], 16), size: parseInt(m[2], 16) }));

// A fixed generator: the same addresses every run.
let state = 12345;
const random = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 4294967296);

function timed(fn) {
  const times = [];
  let result;
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    result = fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { min: times[0], median: times[Math.floor(RUNS / 2)], result };
}

const internals = binding().internals;
// addr2line follows the build id and debug link to DWARF (libc6-dbg) and names the
// inlined function at an address, which no symbol table holds; without them it names
// nothing from .dynsym. So (a), the compared run, gives both the same symbol table:
// libc's .symtab from its debug file with the DWARF and build id removed (objcopy
// --strip-debug, so addr2line cannot find the DWARF again through the build id);
// and (b) times both on libc as installed (ours: .dynsym, then the debug file's
// .symtab; addr2line: DWARF), names not compared.
const debugFile = internals.elfInfo('', libc).debugFile;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'elf-symbolize-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
let symbols = null;
if (debugFile) {
  symbols = path.join(dir, 'libc.symtab');
  execFileSync('objcopy', ['--strip-debug', '--remove-section=.note.gnu.build-id', debugFile, symbols]);
} else {
  console.log('no debug file for libc (Debian: apt-get install libc6-dbg): only (b) runs');
}

/** name → address: aliases share an address. */
function aliasesOf(file) {
  const aliases = new Map();
  for (const line of execFileSync('nm', ['--defined-only', file], { encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n')) {
    // Names as stored: a .symtab keeps versioned ones whole (fmemopen@GLIBC_2.2.5).
    const m = /^([0-9a-f]+) \S (\S+)$/.exec(line);
    if (m && !aliases.has(m[2])) aliases.set(m[2], parseInt(m[1], 16));
  }
  return aliases;
}

console.log(`${libc}: ${functions.length} exported functions; debug file ${debugFile || 'none'}`);
console.log('      N   ours ms (median)   addr2line ms (median)   ratio   names agree');

let failed = false;
function addr2line(file, addresses) {
  const input = addresses.map((a) => `0x${a.toString(16)}`).join('\n') + '\n';
  const out = spawnSync('addr2line', ['-f', '-e', file], { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (out.status !== 0) throw new Error(`addr2line: ${out.stderr}`);
  return out.stdout.split('\n').filter((_, i) => i % 2 === 0);
}
const aliases = symbols && aliasesOf(symbols);
for (const [label, file, compare] of [
  ['(a) .symtab', symbols, true],
  ['(b) as installed', libc, false],
]) {
  if (!file) continue;
  console.log(`${label}: ${file}`);
  for (const n of SIZES) {
    const addresses = Array.from({ length: n }, () => {
      const f = functions[Math.floor(random() * functions.length)];
      return f.address + Math.floor(random() * f.size);
    });
    const ours = timed(() => internals.elfSymbolAt('', file, addresses));
    const peer = timed(() => addr2line(file, addresses));
    let agree = 0;
    ours.result.forEach((symbol, i) => {
      const theirs = peer.result[i];
      if (symbol && (symbol.name === theirs || aliases.get(symbol.name) === aliases.get(theirs))) agree++;
    });
    const ratio = peer.min / ours.min;
    console.log(
      `${String(n).padStart(7)}   ${ours.min.toFixed(2).padStart(7)} (${ours.median.toFixed(2)})   ${peer.min.toFixed(2).padStart(12)} (${peer.median.toFixed(2)})   ${ratio.toFixed(1).padStart(5)}×   ${compare ? `${agree}/${n}` : '(not compared)'}`,
    );
    if (ratio < 1 || (compare && agree !== n)) failed = true;
  }
}
console.log(failed ? 'budget missed (ours slower than addr2line, or names disagree)' : 'within budget: ours ≤ addr2line at every N, all names agree');
process.exitCode = failed ? 1 : 0;
