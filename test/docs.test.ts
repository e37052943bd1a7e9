/**
 * The project's docs stand alone: nothing in the repository sends a reader to a file the
 * repository does not have, and every relative link in its Markdown resolves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..');
const SCANNED = ['README.md', 'docs', 'src', 'native', 'test', 'bench', 'scripts', 'binding.gyp', 'package.json', '.github'];
const SKIPPED = new Set(['node_modules', 'fixtures', 'build', 'lib']);

function filesUnder(entry: string): string[] {
  const full = path.join(root, entry);
  if (!fs.existsSync(full)) return [];
  if (fs.statSync(full).isFile()) return [entry];
  return fs
    .readdirSync(full, { withFileTypes: true })
    .filter((d) => !SKIPPED.has(d.name))
    .flatMap((d) => (d.isDirectory() ? filesUnder(path.join(entry, d.name)) : d.isFile() ? [path.join(entry, d.name)] : []));
}

const files = SCANNED.flatMap(filesUnder).filter((f) => /\.(md|ts|js|cc|h|inc|c|py|sh|json|gyp|yml)$/.test(f));

t.test('no file points outside the repository', async (t) => {
  // Built from parts so that this file does not match itself.
  const outside = [new RegExp(['DESIGN', 'md'].join('\\.')), new RegExp(['\\.\\.', 'shared'].join('/'))];
  t.ok(files.length > 50, `${files.length} files scanned`);
  const offenders = files.filter((f) => {
    const text = fs.readFileSync(path.join(root, f), 'utf8');
    return outside.some((pattern) => pattern.test(text));
  });
  t.same(offenders, [], 'no mention of notes or tools kept beside the repository');
});

t.test('every relative link in the Markdown resolves', async (t) => {
  const markdown = files.filter((f) => f.endsWith('.md'));
  t.ok(markdown.includes(path.join('docs', 'ARCHITECTURE.md')), 'docs/ARCHITECTURE.md exists');
  for (const file of markdown) {
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    for (const match of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      const target = match[1];
      if (/^[a-z]+:/.test(target)) continue;
      t.ok(fs.existsSync(path.join(root, path.dirname(file), target)), `${file} → ${target}`);
    }
  }
});

t.test('the Darwin check the docs name is in the repository and runnable', async (t) => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  for (const script of ['scripts/darwin-check.sh', 'scripts/darwin-build.sh']) {
    const mode = fs.statSync(path.join(root, script)).mode;
    t.ok(mode & 0o100, `${script} is executable`);
  }
  t.match(readme, /scripts\/darwin-check\.sh/, 'README says how to run it');
  const check = fs.readFileSync(path.join(root, 'scripts', 'darwin-check.sh'), 'utf8');
  t.match(check, /darwin-build\.sh" --check/, 'the check is the build script in --check mode');
});
