// Mutation fuzz of the snapshot readers: real snapshots (the threads of live targets in a
// deadlock and asleep, the accelerators of the fixture sysfs trees and of real ioreg
// captures) are mutated field by field (deleted, nulled, retyped, arrays emptied or
// padded with null) and every document goes through what a saved snapshot meets:
// readSnapshot, then compare() both ways, the ProgressTracker (watch --baseline), and the
// CLI's renderings (explain, tables). Whatever is thrown must be IokitSnapError: never a
// TypeError. Seeded, so every run tries the same documents.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { compare } from '../src/analyze/compare';
import { ProgressTracker } from '../src/analyze/progress';
import { explain } from '../src/cli/explain';
import { acceleratorTable } from '../src/cli/accelerator-table';
import { threadTable } from '../src/cli/format';
import { limitLines } from '../src/cli/notes';
import { IokitSnapError } from '../src/errors';
import { importIoreg } from '../src/import';
import { snapshot } from '../src/sample';
import { readSnapshot } from '../src/snapshot-file';
import type { Snapshot } from '../src/types';
import { start, waitFor } from './helpers/targets';
import { mulberry32 } from './helpers/random';

const MUTATIONS = 1500;
const SEED = 0x1f0c5a9;
const STYLE = { color: false };

const random = mulberry32;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Slot = { parent: Json[] | { [key: string]: Json }; key: string | number };

function slotsOf(root: Json): Slot[] {
  const slots: Slot[] = [];
  const stack: Json[] = [root];
  while (stack.length > 0) {
    const node = stack.pop() as Json;
    if (node === null || typeof node !== 'object') continue;
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    for (const key of keys) {
      slots.push({ parent: node, key });
      stack.push((node as Record<string, Json>)[key]);
    }
  }
  return slots;
}

const REPLACEMENTS: Json[] = [null, 0, -1, 1.5, 1e308, -1e308, '', 'x', true, false, [], {}, [null], [{}], { $data: 1 }, '1e400'];

/** One mutation at a random place; returns what it did, for the failure message. */
function mutate(document: Json, next: () => number): string {
  const slots = slotsOf(document);
  const slot = slots[Math.floor(next() * slots.length)];
  const parent = slot.parent as Record<string | number, Json>;
  const where = String(slot.key);
  const current = parent[slot.key];
  const choice = next();
  if (choice < 0.25) {
    if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1);
    else delete parent[slot.key];
    return `delete ${where}`;
  }
  if (choice < 0.35 && Array.isArray(current)) {
    if (next() < 0.5) current.length = 0;
    else current.push(next() < 0.5 ? null : {});
    return `resize array ${where}`;
  }
  if (choice < 0.45 && current !== null && typeof current === 'object' && !Array.isArray(current)) {
    current[next() < 0.5 ? '__proto__' : 'extra'] = { polluted: true };
    return `add key in ${where}`;
  }
  const replacement = REPLACEMENTS[Math.floor(next() * REPLACEMENTS.length)];
  parent[slot.key] = structuredClone(replacement);
  return `${where} = ${JSON.stringify(replacement)}`;
}

/** Everything a saved snapshot goes through after readSnapshot, with a valid one beside it. */
function use(valid: Snapshot, loaded: Snapshot): void {
  const forward = compare(valid, loaded, { stallMs: 0 });
  const backward = compare(loaded, valid);
  explain(forward, STYLE, { verbose: true, accelerators: loaded.accelerators });
  explain(backward, STYLE, { verbose: true, accelerators: valid.accelerators });
  const tracker = new ProgressTracker({ stallMs: 0 });
  tracker.setBaseline(loaded);
  tracker.step(valid);
  tracker.step(loaded);
  acceleratorTable(loaded.accelerators, STYLE);
  for (const p of loaded.processes) threadTable(p.threads, STYLE);
  limitLines(loaded.limits, STYLE);
}

t.test('mutated real snapshots: only IokitSnapError comes out of readSnapshot → compare → rendering', async (t) => {
  const deadlock = await start(t, 'deadlock');
  const sleeper = await start(t, 'threads', ['4']);
  const live = await waitFor(async () => {
    const s = await snapshot({ pids: [deadlock.pid, sleeper.pid], sysRoot: path.join(__dirname, 'fixtures', 'sys', 'amd-workstation'), nvml: false });
    return s.processes.length === 2 && s.processes.every((p) => p.threads.length > 1) && s;
  }, 'both targets sampled with their threads');
  const nvidia = await snapshot({ sysRoot: path.join(__dirname, 'fixtures', 'sys', 'nvidia-h100'), nvml: false, accelerators: true });
  const ioregDir = path.join(__dirname, 'fixtures', 'ioreg');
  const imported = fs
    .readdirSync(ioregDir)
    .filter((f) => f.endsWith('.txt'))
    .map((f) => importIoreg(fs.readFileSync(path.join(ioregDir, f), 'utf8'), { includeProperties: f.startsWith('apple-m4') }));
  // One capture holds no accelerator (a node only NAMED IOAccelerator): nothing to mutate there.
  const bases: Snapshot[] = [live, { ...live, accelerators: [...live.accelerators, ...nvidia.accelerators] }, ...imported.filter((s) => s.accelerators.length > 0)];
  t.equal(bases.length, 6, 'two live snapshots and four imported captures');
  for (const base of bases) use(base, await readSnapshot(JSON.stringify(base))); // the unmutated ones pass

  const next = random(SEED);
  const failures: string[] = [];
  let rejected = 0;
  for (let i = 0; i < MUTATIONS && failures.length < 5; i++) {
    const base = bases[i % bases.length];
    const document = JSON.parse(JSON.stringify(base)) as Json;
    const done: string[] = [];
    const count = 1 + Math.floor(next() * 3);
    for (let m = 0; m < count; m++) done.push(mutate(document, next));
    try {
      use(base, await readSnapshot(JSON.stringify(document)));
    } catch (error) {
      if (error instanceof IokitSnapError) {
        rejected++;
        continue;
      }
      failures.push(`mutation ${i} (${done.join('; ')}): ${(error as Error)?.stack ?? String(error)}`);
    }
  }
  t.strictSame(failures, [], 'no error other than IokitSnapError');
  t.ok(rejected > MUTATIONS / 4 && rejected < MUTATIONS, `readSnapshot rejected ${rejected} of ${MUTATIONS}; the rest went through every reader`);
});
