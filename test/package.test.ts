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
  for (const entry of ['binding.gyp', 'native/', 'lib/', 'bin/', 'prebuilds/']) t.ok(pkg.files.includes(entry), `files has ${entry}`);
  t.equal(pkg.license, 'MIT');
  t.match(pkg.repository, { type: 'git', url: /^git\+https:\/\/github\.com\/[\w-]+\/iokit-snap\.git$/ }, 'where the README\'s links resolve on npmjs.com');
  t.equal(pkg.homepage, `${pkg.repository.url.replace(/^git\+|\.git$/g, '')}#readme`);
  t.equal(pkg.bugs.url, `${pkg.repository.url.replace(/^git\+|\.git$/g, '')}/issues`);
  const license = fs.readFileSync(path.join(root, 'LICENSE'), 'utf8');
  t.match(license, /^MIT License\n\nCopyright \(c\) 2026 iokit-snap contributors\n/, 'LICENSE is the MIT licence package.json names');
});

interface PackEntry {
  path: string;
  size: number;
}

/** What `npm pack` would put in the tarball (no scripts run: the list only). */
function packList(): PackEntry[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return (JSON.parse(out) as { files: PackEntry[] }[])[0].files;
}

/** Every source binding.gyp names, for any OS: the from-source fallback build needs each one. */
function gypSources(): string[] {
  const text = fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8').split('\n').filter((line) => !/^\s*#/.test(line)).join('\n');
  const target = JSON.parse(text).targets[0];
  const parts = [target, ...(target.conditions as [string, { sources?: string[] }][]).map(([, then]) => then)];
  return parts.flatMap((part) => part.sources ?? []);
}

t.test('the tarball holds what a user needs and nothing else', async (t) => {
  const files = packList().map((entry) => entry.path);
  for (const needed of ['package.json', 'README.md', 'LICENSE', 'binding.gyp', 'bin/iokit-snap.js', 'lib/index.js', 'lib/index.mjs', 'lib/index.d.ts', 'lib/cli/main.js']) {
    t.ok(files.includes(needed), `has ${needed}`);
  }
  const sources = gypSources();
  t.ok(sources.length > 10);
  for (const source of sources) t.ok(files.includes(source), `has ${source} (the build from source needs it)`);
  const headers = fs.readdirSync(path.join(root, 'native'), { recursive: true, encoding: 'utf8' }).filter((f) => /\.(h|inc)$/.test(f));
  for (const header of headers) t.ok(files.includes(`native/${header}`), `has native/${header}`);
  const unwanted = files.filter((f) => f !== 'src/analyze/README.md' && /^(src|test|bench|scripts|build|node_modules|\.github|\.ci)\/|^tsconfig|\.map$|\.tgz$/.test(f));
  t.same(unwanted, [], 'no TypeScript sources, tests, benchmarks, build scripts, tsconfig or source maps');
  for (const shipped of ['docs/ARCHITECTURE.md', 'docs/metrics.md', 'examples/prometheus.yml', 'src/analyze/README.md', 'native/darwin/NOTES.md']) {
    t.ok(files.includes(shipped), `has ${shipped}, which the docs point at`);
  }
  // Every relative link in a shipped Markdown file resolves inside the package, as npm installs it.
  for (const doc of files.filter((f) => f.endsWith('.md'))) {
    const text = fs.readFileSync(path.join(root, doc), 'utf8');
    for (const match of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(match[1])) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(doc), match[1])).replace(/\/$/, '');
      t.ok(files.some((f) => f === target || f.startsWith(`${target}/`)), `${doc} → ${match[1]} is in the package`);
    }
  }
  // And every file the commands' help sends a reader to.
  const { COMMANDS } = await import('../src/cli/main');
  for (const command of COMMANDS) {
    for (const match of command.usage.matchAll(/\b((?:docs|examples)\/[\w./-]+\.\w+)/g)) t.ok(files.includes(match[1]), `${command.name} --help → ${match[1]} is in the package`);
  }
  const prebuilds = files.filter((f) => f.startsWith('prebuilds/'));
  t.same(prebuilds.filter((f) => !/^prebuilds\/(linux|darwin)-(x64|arm64)\/iokit-snap\.node$/.test(f)), [], 'prebuilds holds only addons, in prebuildify\'s layout');
});

t.test('every value the package exports has a doc comment in its .d.ts, which is what an editor shows', async (t) => {
  const ts = await import('typescript');
  // The declarations as built (`npm run build`), parsed only: fast, and what a consumer gets.
  const documented = new Set<string>();
  const declared = new Set<string>();
  const files = fs.readdirSync(path.join(root, 'lib'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.d.ts'));
  for (const file of files) {
    const source = ts.createSourceFile(file, fs.readFileSync(path.join(root, 'lib', file), 'utf8'), ts.ScriptTarget.ES2022, true);
    for (const statement of source.statements) {
      const exported = ts.canHaveModifiers(statement) && ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
      if (!exported) continue;
      const names = ts.isVariableStatement(statement)
        ? statement.declarationList.declarations.map((d) => d.name.getText(source))
        : ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)
          ? [statement.name?.getText(source) ?? '']
          : [];
      const docs = ts.getJSDocCommentsAndTags(statement).length > 0;
      for (const name of names) {
        declared.add(name);
        if (docs) documented.add(name);
      }
    }
  }
  const values = Object.keys(await import(path.join(root, 'lib', 'index.js')));
  t.ok(values.length >= 20, `${values.length} values exported`);
  for (const name of values) {
    t.ok(declared.has(name), `${name} is declared`);
    t.ok(documented.has(name), `${name} has a doc comment`);
  }
});
