// Seeded mutation fuzzing of importReport over the real captures: whatever the damage
// (lines dropped, doubled, swapped, cut mid-line, bytes inserted, digits changed, whole
// blocks repeated, a giant line, a number no system prints), the result is a valid snapshot or an IokitSnapError
// EINVAL, never anything else. The iteration count is fixed, so the test's cost is too;
// time scaling is measured by bench/import-reports.js, not asserted here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { IokitSnapError } from '../src/errors';
import { importReport } from '../src/import/reports';
import { validateSnapshot } from '../src/snapshot-file';
import { mulberry32 } from './helpers/random';

const DIR = path.join(__dirname, 'fixtures', 'reports');
const CORPUS = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.txt'))
  .sort()
  .map((f) => ({ name: f, text: fs.readFileSync(path.join(DIR, f), 'utf8') }));

const rng = mulberry32;

const NOISE = ['*', '+', '!', ':', '|', '?', '(', ')', '[', ']', '<', '>', '`', '#', '0x', ' + ', '  (in ', ' [0x', '\t', '\u0000', '\uffff', 'é', '\r'];

export function mutate(text: string, random: () => number): string {
  const pick = (n: number): number => Math.floor(random() * n);
  let lines = text.split('\n');
  const steps = 1 + pick(4);
  for (let s = 0; s < steps; s++) {
    const i = pick(Math.max(1, lines.length));
    switch (pick(11)) {
      case 0:
        lines.splice(i, 1);
        break;
      case 1:
        lines.splice(i, 0, lines[i] ?? '');
        break;
      case 2: {
        const j = pick(lines.length);
        [lines[i], lines[j]] = [lines[j], lines[i]];
        break;
      }
      case 3:
        lines = lines.slice(0, i + 1);
        if (lines[i] !== undefined) lines[i] = lines[i].slice(0, pick(lines[i].length + 1));
        break;
      case 4: {
        const line = lines[i] ?? '';
        const at = pick(line.length + 1);
        lines[i] = line.slice(0, at) + NOISE[pick(NOISE.length)] + line.slice(at);
        break;
      }
      case 5:
        lines[i] = (lines[i] ?? '').replace(/\d/g, (d) => (random() < 0.3 ? String(pick(10)) : d));
        break;
      case 6: {
        const block = lines.slice(i, i + 1 + pick(8));
        for (let r = pick(5); r >= 0; r--) lines.splice(i, 0, ...block);
        break;
      }
      case 7:
        lines[i] = (lines[i] ?? '').replace(/^\s+/, '') || ' ';
        break;
      case 8:
        lines[i] = ' '.repeat(pick(200)) + (lines[i] ?? '').trim();
        break;
      case 10:
        // A number no system prints: past 2^53, past pid_t, past a double (the importer must not emit what it refuses).
        lines[i] = (lines[i] ?? '').replace(/\d+/, (d) => d + '9'.repeat([10, 20, 400][pick(3)]));
        break;
      default:
        lines[i] = (lines[i] ?? '') + ' '.repeat(pick(3000)) + NOISE[pick(NOISE.length)].repeat(pick(3000));
    }
  }
  return lines.join('\n');
}

t.test('mutations of every capture: a valid snapshot or IokitSnapError EINVAL, nothing else', async (t) => {
  const random = rng(0x10c17);
  const ITERATIONS = 60;
  let snapshots = 0;
  let rejected = 0;
  for (const { name, text } of CORPUS) {
    for (let k = 0; k < ITERATIONS; k++) {
      const input = mutate(text, random);
      let snapshot;
      try {
        snapshot = importReport(input);
      } catch (error) {
        // Refused: EINVAL, naming the line where it can.
        if (!(error instanceof IokitSnapError) || error.code !== 'EINVAL') {
          t.fail(`${name} mutation ${k}: ${String(error)}\n${JSON.stringify(input.slice(0, 400))}`);
          return;
        }
        rejected++;
        continue;
      }
      // Accepted: then valid, never a snapshot its own validation refuses.
      try {
        validateSnapshot(snapshot, `${name} mutation ${k}`);
      } catch (error) {
        t.fail(`${name} mutation ${k}: imported, then refused: ${String(error)}\n${JSON.stringify(input.slice(0, 400))}`);
        return;
      }
      snapshots++;
    }
  }
  t.equal(snapshots + rejected, CORPUS.length * ITERATIONS);
  t.ok(snapshots > rejected, `most mutations still read as reports (${snapshots} read, ${rejected} EINVAL)`);
});

t.test('random text and concatenations of different formats never throw anything else', async (t) => {
  const random = rng(42);
  for (let k = 0; k < 200; k++) {
    const length = Math.floor(random() * 400);
    let text = '';
    for (let i = 0; i < length; i++) text += random() < 0.1 ? '\n' : random() < 0.3 ? NOISE[Math.floor(random() * NOISE.length)] : String.fromCharCode(32 + Math.floor(random() * 95));
    const a = CORPUS[Math.floor(random() * CORPUS.length)].text;
    const b = CORPUS[Math.floor(random() * CORPUS.length)].text;
    for (const input of [text, a + text + b, b + '\n' + a]) {
      try {
        importReport(input);
      } catch (error) {
        t.ok(error instanceof IokitSnapError && error.code === 'EINVAL', String(error));
      }
    }
  }
});
