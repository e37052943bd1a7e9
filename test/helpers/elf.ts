/**
 * Real ELF files and their peers for the ELF reader's tests: programs compiled from
 * test/targets/elf-*.c (cached under os.tmpdir() by a hash of source, compiler and
 * flags, built beside and renamed like helpers/targets.ts), and what `nm` and
 * `readelf --debug-dump=frames-interp` say about them.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ElfMachine, ElfUnwindRule } from '../../src/native';

const TARGETS = path.join(__dirname, '..', 'targets');

/**
 * The environment for the peer tools and compilers: without LD_PRELOAD, so under
 * scripts/asan.sh (libasan preloaded into node) their own leaks at exit do not count.
 */
export const TOOL_ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'LD_PRELOAD'));

/** Run a tool (readelf, nm, objcopy…) and return its standard output. */
export function tool(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', env: TOOL_ENV, maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Compile test/targets/`source` (C or assembly) with `compiler` and `flags`; the cached binary's path. */
export async function buildElf(source: string, flags: string[], compiler = process.env.CC ?? 'cc'): Promise<string> {
  const file = path.join(TARGETS, source);
  const text = await fs.promises.readFile(file);
  const hash = createHash('sha256').update(text).update(compiler).update(flags.join(' ')).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'iokit-snap-elf', hash);
  const binary = path.join(dir, path.parse(source).name);
  if (fs.existsSync(binary)) return binary;
  await fs.promises.mkdir(dir, { recursive: true });
  const partial = `${binary}.${process.pid}.tmp`;
  await promisify(execFile)(compiler, [...flags, '-o', partial, file], { env: TOOL_ENV });
  await fs.promises.rename(partial, binary);
  return binary;
}

export interface NmSymbol {
  address: bigint;
  size: bigint;
  type: string;
  name: string;
}

/** Defined function symbols (T, t, i, W, w) with a size, as `nm` lists them. */
export function nmFunctions(file: string, dynamic = false): NmSymbol[] {
  const out = tool('nm', ['--defined-only', '-S', ...(dynamic ? ['-D'] : []), file]);
  const symbols: NmSymbol[] = [];
  for (const line of out.split('\n')) {
    const match = /^([0-9a-f]+) ([0-9a-f]+) ([TtiWw]) (\S+)$/.exec(line);
    if (!match) continue;
    // nm -D prints versioned names (name@@GLIBC_2.2.5); the table stores the bare name.
    symbols.push({ address: BigInt(`0x${match[1]}`), size: BigInt(`0x${match[2]}`), type: match[3], name: match[4].replace(/@.*$/, '') });
  }
  return symbols;
}

/** One row of readelf's interpreted CFI: from `location` up to the next row or the FDE's end. */
export interface FrameRow {
  location: bigint;
  columns: Record<string, string>;
}
export interface FrameDescription {
  section: string;
  start: bigint;
  end: bigint;
  rows: FrameRow[];
}

/**
 * `readelf --debug-dump=frames-interp`, parsed: each FDE with its rows. An FDE with no
 * instructions prints no table; it takes its CIE's initial row.
 */
export function readelfFrames(file: string): FrameDescription[] {
  // readelf exits 1 over warnings unrelated to CFI (a debug file has no interpreter to
  // show); its output is complete all the same.
  const out = spawnSync('readelf', ['--wide', '--debug-dump=frames-interp', file], { encoding: 'utf8', env: TOOL_ENV, maxBuffer: 1 << 30 }).stdout;
  const fdes: FrameDescription[] = [];
  const cieRows = new Map<string, FrameRow[]>();
  let section = '';
  let current: { rows: FrameRow[]; names: string[] } | undefined;
  let currentFde: FrameDescription | undefined;
  let fdeCie = '';
  const finishFde = (): void => {
    if (currentFde && currentFde.rows.length === 0) {
      const inherited = cieRows.get(`${section}:${fdeCie}`) ?? [];
      currentFde.rows = inherited.slice(0, 1).map((row) => ({ location: currentFde!.start, columns: row.columns }));
    }
    currentFde = undefined;
  };
  for (const line of out.split('\n')) {
    const sectionMatch = /^Contents of the (\S+) section\b/.exec(line);
    if (sectionMatch) {
      finishFde();
      section = sectionMatch[1];
      continue;
    }
    const cie = /^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ CIE/.exec(line);
    if (cie) {
      finishFde();
      const rows: FrameRow[] = [];
      cieRows.set(`${section}:${cie[1].replace(/^0+(?=.)/, '')}`, rows);
      current = { rows, names: [] };
      continue;
    }
    const fde = /^[0-9a-f]+ [0-9a-f]+ [0-9a-f]+ FDE cie=([0-9a-f]+) pc=([0-9a-f]+)\.\.([0-9a-f]+)/.exec(line);
    if (fde) {
      finishFde();
      fdeCie = fde[1].replace(/^0+(?=.)/, '');
      currentFde = { section, start: BigInt(`0x${fde[2]}`), end: BigInt(`0x${fde[3]}`), rows: [] };
      fdes.push(currentFde);
      current = { rows: currentFde.rows, names: [] };
      continue;
    }
    if (!current) continue;
    if (/^\s+LOC\s+CFA/.test(line)) {
      current.names = line.trim().split(/\s+/);
      continue;
    }
    const row = /^([0-9a-f]{16}) (.*)$/.exec(line);
    if (row && current.names.length > 0) {
      // "r0 (rax)": a register rule names the register twice, with a space.
      const values = line.trim().replace(/ \(\w+\)/g, '').split(/\s+/);
      const columns: Record<string, string> = {};
      current.names.forEach((name, i) => (columns[name] = values[i]));
      current.rows.push({ location: BigInt(`0x${row[1]}`), columns });
    }
  }
  finishFde();
  return fdes;
}

/**
 * The rule readelf's row implies, in the reader's terms; null where the reader must
 * give none (a CFA by expression or on another register, a return address that is
 * neither saved at the CFA nor undefined, nor in the link register on arm64).
 */
export function expectedRule(columns: Record<string, string>, machine: ElfMachine): ElfUnwindRule | null {
  const sp = machine === 'x64' ? 'rsp' : 'sp';
  const fp = machine === 'x64' ? 'rbp' : 'x29';
  const ra = columns.ra ?? columns[machine === 'x64' ? 'rip' : 'x30'];
  const cfa = /^(\w+)\+(-?\d+)$/.exec(columns.CFA ?? '');
  if (!cfa || (cfa[1] !== sp && cfa[1] !== fp)) return null;
  const rule: ElfUnwindRule = { cfaBase: cfa[1] === sp ? 'sp' : 'fp', cfaOffset: Number(cfa[2]), ra: 'cfa', raOffset: 0, fp: 'same', fpOffset: 0 };
  const raSaved = /^c([+-]\d+)$/.exec(ra ?? '');
  if (raSaved) {
    rule.raOffset = Number(raSaved[1]);
  } else if (ra === 'u' && machine === 'x64') {
    rule.ra = 'undefined';
  } else if (machine === 'arm64' && (ra === undefined || ra === 's' || ra === 'u')) {
    // readelf prints an unmentioned column as "u" too; on arm64 the reader takes
    // DW_CFA_undefined only from the instructions, which these programs never use.
    rule.ra = 'lr';
  } else {
    return null;
  }
  const fpSaved = /^c([+-]\d+)$/.exec(columns[fp] ?? '');
  if (fpSaved) {
    rule.fp = 'cfa';
    rule.fpOffset = Number(fpSaved[1]);
  }
  return rule;
}

/** Addresses to check in an FDE: each row's first byte and last byte. */
export function rowProbes(fde: FrameDescription): Array<{ address: bigint; row: FrameRow }> {
  const probes: Array<{ address: bigint; row: FrameRow }> = [];
  fde.rows.forEach((row, i) => {
    const end = i + 1 < fde.rows.length ? fde.rows[i + 1].location : fde.end;
    if (end <= row.location) return;
    probes.push({ address: row.location, row });
    if (end - 1n !== row.location) probes.push({ address: end - 1n, row });
  });
  return probes;
}

/** The C library this Node process has mapped (the system's libc). */
export function systemLibc(): string {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  const match = /\s(\/\S*\/libc\.so\.6)$/m.exec(maps) ?? /\s(\/\S*\/libc[-.][^/\s]*\.so[^/\s]*)$/m.exec(maps);
  if (!match) throw new Error('no libc in /proc/self/maps');
  return match[1];
}
