/**
 * What a big report that iokit-snap accepts (up to the 256 MB input cap) must not do: reach
 * an engine limit. A call spread over an array (`push(...a)`, `Math.max(...a)`) overflows the
 * stack past ~125,000 elements, a string cannot pass buffer.constants.MAX_STRING_LENGTH
 * (~512 M characters), an array of 120 M lines aborts the process. Each check uses the
 * smallest input that reaches the limit (150,000 tasks or threads, built from the real report
 * shapes in test/helpers/big-reports.js); the big sizes' times and memory are measured by
 * bench/import-reports.js, not here.
 */
import t from 'tap';
import { constants } from 'node:buffer';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import plist from 'plist';
import * as client from 'prom-client';
import { compare } from '../src/analyze/compare';
import { acceleratorTable } from '../src/cli/accelerator-table';
import { explainCommand } from '../src/cli/commands/explain';
import { explain as describe, explainChunks } from '../src/cli/explain';
import { stackLines } from '../src/cli/format';
import { explain } from '../src/explain';
import { importIoreg } from '../src/import';
import { parseIoregText } from '../src/import/ioreg-text';
import { parseIoregValue } from '../src/import/ioreg-value';
import { splitLines } from '../src/import/lines';
import { parsePlistXml } from '../src/import/plist-xml';
import { parseHungTask } from '../src/import/reports/hung-task';
import { withThreadBudget } from '../src/import/reports/parsed';
import { importReport } from '../src/import/reports';
import { importedThreadBudget, MAX_IMPORTED_THREADS, MAX_INPUT_BYTES, MAX_INPUT_LINES } from '../src/input-limits';
import { createMetrics } from '../src/metrics';
import { readInputFile } from '../src/read-input';
import type { MetricsSampleEvent } from '../src/metrics/collector';
import { jsonChunks, writeDocument, writeSnapshot } from '../src/snapshot-file';
import type { Report } from '../src/analyze/types';
import type { Snapshot } from '../src/types';
import { runCli } from './helpers/cli';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const big = require('./helpers/big-reports.js') as {
  hungTask(tasks: number, frames?: number, options?: { timestamps?: boolean }): Iterable<string>;
  crash(bytes: number, frames?: number): Iterable<string>;
  text(chunks: Iterable<string>): string;
};

/** Past the ~125,000 arguments a call can take on Node's default stack. */
const MANY = 140_000;
const plain = { color: false };

const hung = importReport(big.text(big.hungTask(MANY, 1, { timestamps: false })));
const healthy = importReport(big.text(big.hungTask(10, 1, { timestamps: false })));
let compared: Report | undefined;
/** compare(healthy, hung), once (the tests that need it share it). */
const paired = (): Report => (compared ??= compare(healthy, hung));

t.test(`compare() and its text with ${MANY} findings: no call spreads them`, async (t) => {
  t.equal(hung.processes.length, MANY, 'the report reads');
  const pair = paired();
  t.equal(pair.verdict, 'hung');
  t.ok(pair.findings.length >= MANY, `compare() took the report's own ${pair.findings.length} findings in`);
  t.match(describe(pair, plain), /^HUNG: 140000 critical findings, the longest for at least 2 min 0 s\n/, 'the headline finds the longest without Math.max(...)');
});

t.test(`metrics: one process with ${MANY} findings renders`, async (t) => {
  const registry = new client.Registry();
  const metrics = createMetrics({ registry });
  const pair = paired();
  const findings = pair.findings.map((f) => ({ ...f, ref: { pid: 4242, tid: f.ref.tid } }));
  const event: MetricsSampleEvent = {
    type: 'sample',
    at: new Date().toISOString(),
    monotonicNs: 1e9,
    verdict: 'hung',
    findings,
    threads: MANY,
    processes: [],
    report: { ...pair, findings },
    accelerators: [],
    limits: [],
    probes: [],
  };
  metrics.update(event);
  const text = await registry.metrics();
  t.match(text, /iokit_snap_process_verdict\{pid="4242",name="unknown"\} 2/);
  t.match(text, /iokit_snap_process_findings\{pid="4242",name="unknown",kind="uninterruptible",severity="critical"\} 14\d{4}/);
});

t.test(`tables of ${MANY} rows: accelerators, a thread's stack`, async (t) => {
  const m4 = importIoreg(
    fs.readFileSync(path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt'), 'utf8'),
  ).accelerators[0];
  const many = Array.from({ length: MANY }, (_, i) => ({ ...m4, id: `0x${(0x100000000 + i).toString(16)}` }));
  t.equal(acceleratorTable(many, plain).split('\n').length, MANY + 2, 'a header, a row each, the final newline');
  const frames = hung.processes.map((p) => p.threads[0].kernelFrames![0]);
  const deep = { ...hung.processes[0].threads[0], kernelFrames: undefined, kernelStack: undefined, stack: frames };
  t.equal(stackLines([deep], plain).split('\n').length, MANY + 3, 'a blank line, the thread, a line per frame, the final newline');
});

t.test('import of a crash report of 25,000 threads prints them all, in tables of 10,000', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-limits-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'crash.txt');
  fs.writeFileSync(file, big.text(big.crash(25_000 * 92, 1)));
  const run = await runCli(['import', file]);
  t.equal(run.code, 0, run.stderr);
  const threads = Number(/^pid 0 \(unknown\): (\d+) threads from crash output$/m.exec(run.stdout)?.[1]);
  t.ok(threads >= 25_000, `${threads} threads`);
  t.equal(run.stdout.split('\n').filter((line) => line.startsWith('TID ')).length, Math.ceil(threads / 10_000), 'one header per 10,000 rows');
  t.equal(run.stdout.split('\n').filter((line) => /^\d+ /.test(line)).length, threads, 'every thread a row');
});

t.test(`a spindump with ${MANY} notes, an ioreg line with ${MANY} unknown header items: read, each note and limit kept`, async (t) => {
  const spindump =
    'Note: sampled while unresponsive\n'.repeat(MANY) +
    'Process: app [4242]\n  Thread 0x1a2b    1 sample (1-1)\n  1  start_wqthread + 13 (libsystem_pthread.dylib + 5085) [0x7fff8cefb3dd]\n';
  const snap = importReport(spindump);
  t.equal(snap.processes[0].report!.notes.length, MANY);
  const ioreg = `+-o IntelAccelerator  <class IntelAccelerator, id 0x10000048d, registered, matched, active, busy 0 (12 ms), retain 59${', odd'.repeat(MANY)}>\n`;
  t.equal(importIoreg(ioreg).limits.filter((l) => l.field === 'header').length, MANY);
});

t.test('jsonChunks: the text of JSON.stringify(value, null, 2), in pieces, for any value', async (t) => {
  const same = (value: unknown, chunk: number, what: string): void => {
    const pieces = [...jsonChunks(value, 2, chunk)];
    t.equal(pieces.join(''), JSON.stringify(value, null, 2) ?? '', what);
  };
  const fixtures = path.join(__dirname, 'fixtures', 'reports');
  for (const file of fs.readdirSync(fixtures).filter((f) => f.endsWith('.txt'))) {
    const snap = importReport(fs.readFileSync(path.join(fixtures, file), 'utf8'));
    same(snap, 1 << 15, file);
    same(snap, 7, `${file} in 7-character pieces`);
  }
  class Point {
    constructor(
      readonly x: number,
      readonly y: number,
    ) {}
  }
  const odd = {
    undefinedMember: undefined,
    fn: () => 1,
    sym: Symbol('s'),
    date: new Date(0),
    nested: { toJSON: (key: string) => ({ key, deep: [1, { a: undefined }] }) },
    gone: { toJSON: () => undefined },
    boxed: [new Number(3), new String('s'), new Boolean(false)],
    numbers: [0, -0, 1.5e300, Number.NaN, Number.POSITIVE_INFINITY, -1],
    arrayHoles: [undefined, () => 1, Symbol('x'), null],
    empty: [{}, [], [[]], { a: {} }],
    instance: new Point(1, 2),
    strings: ['', 'quote " backslash \\ newline \n tab \t nul \u0000 emoji 😀 lone \ud800 é', 'x'.repeat(100)],
    '"key"\n': 'escaped key',
    wide: Array.from({ length: 50 }, (_, i) => ({ i, name: `t${i}`, frames: [{ pc: i, text: 'a'.repeat(i * 40) }] })),
  };
  for (const chunk of [1, 3, 64, 1 << 15]) same(odd, chunk, `odd values, pieces of ${chunk}`);
  // A string longer than a piece is cut between characters, never inside a surrogate pair.
  same({ s: '😀'.repeat(1000) }, 7, 'surrogate pairs across pieces');
  same({ a: { when: new Date(0), n: 1 } }, 1 << 15, 'a small object holding a Date (toJSON): walked, not stringified whole');
  same('top-level string', 3, 'a string');
  same(42, 3, 'a number');
  same(null, 3, 'null');
  same([], 3, 'an empty array');
  t.same([...jsonChunks(undefined)], [], 'undefined: nothing, as JSON.stringify gives undefined');
  const cycle: Record<string, unknown> = { a: [1] };
  (cycle.a as unknown[]).push(cycle);
  t.throws(() => [...jsonChunks(cycle, 2, 4)], TypeError, 'a cycle, as JSON.stringify');
  t.throws(() => [...jsonChunks({ big: 1n })], TypeError, 'a BigInt, as JSON.stringify');
  t.throws(() => [...jsonChunks([...new Array(3000).fill('a long enough member'), 1n])], TypeError, 'a BigInt in a walked array too');
  const deep: unknown[] = [];
  let at = deep;
  for (let i = 0; i < 1000; i++) at = at[0] = [{ i }, 'x'.repeat(5)] as unknown[];
  same(deep, 1 << 15, 'nested 1,000 deep (a walk with its own stack, no recursion)');
});

/** Counts the characters written; keeps nothing. */
function counter(): Writable & { chars: number } {
  const sink = new Writable({
    decodeStrings: false,
    write(chunk: string, _encoding, done) {
      sink.chars += chunk.length;
      done();
    },
  }) as Writable & { chars: number };
  sink.chars = 0;
  return sink;
}

t.test('a document whose JSON is longer than a string can be is written whole, to a stream and to a file', async (t) => {
  // One frame with a 1 MiB text, referred to 520 times: little memory, 520 MiB of JSON.
  const frame = { pc: 1, module: 'libx', offset: 0, symbol: 'f', symbolOffset: 0, text: 'x'.repeat(1 << 20) };
  const snap: Snapshot = {
    ...healthy,
    processes: [{ ...healthy.processes[0], threads: [{ ...healthy.processes[0].threads[0], stack: new Array(520).fill(frame) }] }],
  };
  t.ok(520 * (1 << 20) > constants.MAX_STRING_LENGTH, 'more than JSON.stringify can return');
  const sink = counter();
  await writeDocument(sink, snap);
  t.ok(sink.chars > constants.MAX_STRING_LENGTH, `${sink.chars} characters written`);

  // To a file, through the same writer: what JSON.stringify would have written, of a smaller one.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-limits-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'snap.json');
  const small = importReport(big.text(big.crash(200_000)));
  await writeSnapshot(file, small);
  t.equal(fs.readFileSync(file, 'utf8'), JSON.stringify(small, null, 2) + '\n');
  t.same(fs.readdirSync(dir), ['snap.json'], 'no temporary file left');
  const piped = new PassThrough();
  let text = '';
  piped.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  await writeSnapshot(piped, small);
  t.equal(text, JSON.stringify(small, null, 2) + '\n', 'to a stream');
  const broken = new Writable({ write: (_chunk, _encoding, done) => done(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })) });
  broken.on('error', () => undefined);
  await t.rejects(writeSnapshot(broken, small), { code: 'EIO', message: /cannot write the snapshot to the stream: no space left on device/ });
});

t.test('explain - reads stdin with the size cap a file has', async (t) => {
  // 257 references to one 1 MiB buffer: past the cap without holding 257 MiB.
  const mib = Buffer.alloc(1 << 20, 'x');
  const stdin = Readable.from((function* () {
    for (let i = 0; i <= MAX_INPUT_BYTES / mib.length; i++) yield mib;
  })());
  const out = new PassThrough();
  await t.rejects(explainCommand.run(['-'], { stdin, stdout: out, stderr: out, env: {} }), { code: 'EINVAL', message: /snapshot or report from stdin is larger than 256 MB/ });
});

t.test('more lines than any input has: EINVAL, not an array that aborts the process', async (t) => {
  t.throws(() => splitLines('\n'.repeat(100), { max: 100, what: 'the report' }), {
    code: 'EINVAL',
    message: /^the report has more than 100 lines, more than any report or ioreg dump/,
  });
  t.equal(splitLines('\n'.repeat(99), { max: 100 }).length, 100, '100 lines read');
  t.equal(MAX_INPUT_LINES, 16 * 1024 * 1024, 'the importers\' bound');
  if (process.platform === 'linux') {
    // A /proc file says its size is 0 and holds megabytes: read past its stated size, whole.
    const kallsyms = fs.readFileSync('/proc/kallsyms', 'utf8');
    t.ok(kallsyms.length > 2 << 20, 'more than the first read');
    t.equal((await readInputFile('/proc/kallsyms', 'report')).length, kallsyms.length);
  }
  t.throws(() => splitLines('x'.repeat(3), { max: 0 }), { message: /^the input has more than 0 lines/ });
});

t.test('tasks waiting on one lock: a note that names the first 20, not every one', async (t) => {
  const report = explain(importReport(big.text(big.hungTask(30, 6, { timestamps: false }))));
  const note = report.notes.find((n) => /wait on/.test(n));
  t.match(note, /^30 tasks wait on mutex_lock in mutex_lock: one holder blocks them all \(pid 10000 .*; and 10 more\)$/);
  t.equal(note!.split('; ').length, 21, '20 named, then the count');
});

t.test('diff compares two documents chunk by chunk: the same snapshot twice is refused, a changed one is compared', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-limits-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Many chunks' worth of the same text, then a difference at the very end.
  const a = importReport(big.text(big.crash(400_000)));
  const b: Snapshot = { ...a, limits: [...a.limits.slice(0, -1), { ...a.limits[a.limits.length - 1], reason: 'changed at the end' }] };
  fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify(a));
  fs.writeFileSync(path.join(dir, 'b.json'), JSON.stringify(b));
  t.ok([...jsonChunks(a)].length > 10, 'more than ten chunks');
  const same = await runCli(['diff', path.join(dir, 'a.json'), path.join(dir, 'a.json')]);
  t.match(same.stderr, /the same snapshot/);
  const changed = await runCli(['diff', path.join(dir, 'a.json'), path.join(dir, 'b.json'), '--json']);
  t.notMatch(changed.stderr, /the same snapshot/, 'the same clock, another document: compared');
  t.match(JSON.parse(changed.stdout), { verdict: String });
});

t.test('the text of a report whose notes fill more than a chunk', async (t) => {
  const report = { ...paired(), findings: [], notes: ['x'.repeat(1 << 20), 'the last note'] };
  const chunks = [...explainChunks(report, plain)];
  t.ok(chunks.length >= 2, 'more than one piece');
  t.match(chunks.join(''), /note: x{1048576}\n {2}note: the last note\n$/);
});

t.test('what would not fit in memory is EINVAL: threads past the budget, more lines than a report of its size holds, more values than a dump holds', async (t) => {
  const lines = big.text(big.hungTask(5, 1, { timestamps: false })).split('\n');
  t.throws(() => withThreadBudget(() => parseHungTask(lines), 3), { code: 'EINVAL', message: /^line 14: the report lists more than 3 threads or tasks, more than a report of its size can be read with/ });
  t.equal(withThreadBudget(() => parseHungTask(lines), 5).processes.length, 5, 'within the budget');
  t.ok(importedThreadBudget(262_144_000, 3_300_000) > 228_000, 'a 250 MB sysrq-w dump of 228,000 tasks fits');
  t.equal(importedThreadBudget(0, 0), MAX_IMPORTED_THREADS);
  t.ok(importedThreadBudget(176_000_000, 16_000_000) <= 0, '16 M one-frame lines do not');
  t.throws(() => importReport('INFO: task a:1 blocked for more than 120 seconds.\n' + '\n'.repeat(12_100_000)), {
    code: 'EINVAL',
    message: /^the report has 12100002 lines: more than a report of its size can be read with/,
  });
  t.throws(() => parseIoregText('+-o a  <class b>\n'.repeat(3), 16), { code: 'EINVAL', message: /^ioreg input, line 3: the dump holds more than 16 values and registry entries/ });
  t.throws(() => parseIoregText('+-o a  <class b>\n  {\n    "k" = (1,2,3,4,5,6,7,8,9)\n  }\n', 12), { code: 'EINVAL', message: /^ioreg input, line 3: the dump holds more than 12/ });
  t.throws(() => parseIoregValue('(1,2,3)', { left: 3 }), { code: 'EINVAL', message: /^not an ioreg value: it holds more than \d+ values, more than any ioreg dump/ });
  t.same(parseIoregValue('(1,2,3)', { left: 4 }), [1, 2, 3]);
  t.throws(() => parsePlistXml(plist.build([1, 2, 3]), 4), { message: /: more than 4 values, more than any ioreg dump holds/ });
  t.same(parsePlistXml(plist.build([1, 2, 3]), 5), [1, 2, 3], 'the array, its items and the plist itself');
});
