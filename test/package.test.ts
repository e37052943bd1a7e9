import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';

// Another project that depends on iokit-snap (linked, as `npm install ../iokit-snap` does).
const root = path.join(__dirname, '..');
const project = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-consumer-'));
t.teardown(() => fs.rmSync(project, { recursive: true, force: true }));
fs.mkdirSync(path.join(project, 'node_modules'));
fs.symlinkSync(root, path.join(project, 'node_modules', 'iokit-snap'), 'dir');
fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));

const node = (file: string, source: string): string => {
  fs.writeFileSync(path.join(project, file), source);
  return execFileSync(process.execPath, [file], { cwd: project, encoding: 'utf8' });
};

const API = ['IokitSnapError', 'createThreadSampler', 'readSnapshot', 'sampleAccelerators', 'sampleThreads', 'snapshot', 'writeSnapshot'];

t.test('require() works', async (t) => {
  const out = node('cjs.cjs', `const api = require('iokit-snap'); console.log(JSON.stringify(Object.keys(api).sort()));`);
  const names = JSON.parse(out) as string[];
  for (const name of API) t.ok(names.includes(name), name);
});

t.test('import { … } works, and is the same module as require()', async (t) => {
  const out = node(
    'esm.mjs',
    `import { sampleThreads, IokitSnapError, snapshot } from 'iokit-snap';
     import { createRequire } from 'node:module';
     const cjs = createRequire(import.meta.url)('iokit-snap');
     const snap = await snapshot({ accelerators: false });
     const error = await sampleThreads(-1).catch((e) => e);
     console.log(JSON.stringify({ same: cjs.sampleThreads === sampleThreads, format: snap.format,
       errorType: error instanceof IokitSnapError, code: error.code }));`,
  );
  t.same(JSON.parse(out), { same: true, format: 'iokit-snap/1', errorType: true, code: 'EINVAL' });
});

t.test('the package declares what a consumer needs', async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  t.equal(pkg.name, 'iokit-snap');
  t.equal(pkg.bin['iokit-snap'], 'bin/iokit-snap.js');
  t.equal(pkg.engines.node, '>=20');
  t.ok(fs.existsSync(path.join(root, pkg.types)), 'type declarations are built');
  for (const entry of ['binding.gyp', 'native/', 'src/', 'lib/', 'bin/']) t.ok(pkg.files.includes(entry), `files has ${entry}`);
});
