// What the command and the package load: only what is used. `iokit-snap --help` loads no
// command module; a command loads its own module and what it calls, never the other
// commands, prom-client, the importers, the analysis or the snapshot schema unless it uses
// them; `require('iokit-snap')` loads the samplers, and the rest on first use. (How long a start takes is measured by
// bench/cli-start.js, against `node -e 0`; this checks what is loaded, which is what the time
// comes from.) Runs the build in lib/.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { COMMANDS } from '../src/cli/main';
import { start } from './helpers/targets';

const root = path.join(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-loaded-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
// Preloaded into the child: at exit, the files it loaded, relative to the repository, on fd 3.
const preload = path.join(dir, 'loaded.js');
fs.writeFileSync(
  preload,
  `process.on('exit', () => require('fs').writeSync(3, JSON.stringify(Object.keys(require.cache).map((f) => require('path').relative(${JSON.stringify(root)}, f)))));\n`,
);

/** The files a node run of `args` loaded (node_modules packages by name). */
function loadedBy(args: string[]): string[] {
  const result = spawnSync(process.execPath, ['-r', preload, ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  if (result.status !== 0 && result.status !== 2) throw new Error(`node ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return (JSON.parse(result.output[3] ?? '[]') as string[]).map((f) => f.replace(/^node_modules\/([^/]+)\/.*$/, 'node_modules/$1'));
}

const BIN = path.join('bin', 'iokit-snap.js');
const HEAVY = ['node_modules/prom-client', 'node_modules/saxes', 'lib/import/', 'lib/analyze/', 'lib/metrics/', 'lib/explain.js', 'lib/snapshot-file.js', 'lib/snapshot-schema.js'];
const commandsIn = (files: string[]): string[] => files.filter((f) => f.startsWith('lib/cli/commands/')).map((f) => path.basename(f, '.js'));
const heavyIn = (files: string[]): string[] => files.filter((f) => HEAVY.some((h) => f.startsWith(h)));

t.test('every command is listed with the name and summary of its own module', async (t) => {
  // Read from the sources, not loaded: loading every command is what COMMANDS avoids.
  const dir = path.join(root, 'src', 'cli', 'commands');
  const modules = fs.readdirSync(dir).filter((f) => f.endsWith('.ts'));
  t.equal(COMMANDS.length, modules.length, 'one entry per command module');
  for (const file of modules) {
    const source = fs.readFileSync(path.join(dir, file), 'utf8');
    const name = /^\s*name: '([^']+)',$/m.exec(source)?.[1];
    const summary = /^\s*summary: '((?:[^'\\]|\\.)*)',$/m.exec(source)?.[1]?.replace(/\\(.)/g, '$1');

    t.ok(name !== undefined && summary !== undefined, `${file} names its command and summary`);
    const entry = COMMANDS.find((c) => c.name === name);
    t.ok(entry, `${name} is in COMMANDS`);
    t.equal(entry?.summary, summary, `${name}: the summary is the module's`);
  }
  const { threadsCommand } = await import('../src/cli/commands/threads');
  const threads = COMMANDS.find((c) => c.name === 'threads');
  t.equal(threads?.usage, threadsCommand.usage, "a command's usage is its module's, loaded when asked for");
  await t.resolves(threads!.run(['--bogus'], { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: {} }).catch(() => undefined), 'run goes to the module');
});

t.test('the command loads only what it runs', async (t) => {
  const help = loadedBy([BIN, '--help']);
  t.same(commandsIn(help), [], '--help loads no command module');
  t.same(heavyIn(help), [], '--help loads none of prom-client, the importers, the analysis');
  t.notOk(help.some((f) => f.endsWith('.node')), '--help does not load the native addon');
  t.same(commandsIn(loadedBy([BIN, '--version'])), [], '--version loads no command module');
  t.same(commandsIn(loadedBy([BIN, 'diff', '--help'])), ['diff'], 'diff --help loads diff alone');

  const json = loadedBy([BIN, '--json', '--sys-root', path.join('test', 'fixtures', 'sys', 'nvidia-h100')]);
  t.same(commandsIn(json), ['accelerators'], '--json loads the default command alone');
  t.same(heavyIn(json), [], '--json loads none of prom-client, the importers, the analysis');

  const target = await start(t, 'threads', ['3']);
  const threads = loadedBy([BIN, 'threads', String(target.pid)]);
  t.same(commandsIn(threads), ['threads'], 'threads loads its own module alone');
  t.same(heavyIn(threads), [], 'threads loads none of prom-client, the importers, the analysis');
  t.same(threads.filter((f) => f.startsWith('lib/map/')), [], 'threads does not load the accelerator mappings');
});

t.test("require('iokit-snap') loads the samplers, and the rest on first use", async (t) => {
  const lib = JSON.stringify(path.join(root, 'lib'));
  const bare = loadedBy(['-e', `const api = require(${lib}); api.snapshot({ accelerators: false }).then((s) => { if (s.format !== 'iokit-snap/1') process.exit(1); })`]);
  t.same(heavyIn(bare), [], 'snapshot() loads none of the snapshot files, importers, analysis, metrics');
  const analysis = loadedBy(['-e', `const api = require(${lib}); if (typeof api.compare !== 'function') process.exit(1);`]);
  t.ok(analysis.includes('lib/analyze/compare.js'), 'reading compare loads the analysis');
  t.notOk(analysis.includes('node_modules/prom-client'), '… and not prom-client');
  const metrics = loadedBy(['-e', `const api = require(${lib}); if (typeof api.createMetrics !== 'function') process.exit(1);`]);
  t.ok(metrics.includes('node_modules/prom-client'), 'reading createMetrics loads prom-client');
  const names = loadedBy(['-e', `const api = require(${lib}); if (Object.keys(api).length < 20) process.exit(1);`]);
  t.same(heavyIn(names), [], 'listing the names loads nothing more');
});

t.test('each name the package exports is the export of its module, the ones loaded on first use too', async (t) => {
  const api = (await import('../src/index')) as unknown as Record<string, unknown>;
  const modules: [string, Record<string, unknown>][] = [
    ['../src/errors', await import('../src/errors')],
    ['../src/sample', await import('../src/sample')],
    ['../src/snapshot-file', await import('../src/snapshot-file')],
    ['../src/import', await import('../src/import')],
    ['../src/import/reports', await import('../src/import/reports')],
    ['../src/analyze', await import('../src/analyze')],
    ['../src/explain', await import('../src/explain')],
    ['../src/metrics', await import('../src/metrics')],
    ['../src/runtimes/go', await import('../src/runtimes/go')],
    ['../src/runtimes/memory', await import('../src/runtimes/memory')],
    ['../src/host/watch', await import('../src/host/watch')],
  ];
  let checked = 0;
  for (const [name, module] of modules) {
    for (const [key, value] of Object.entries(module)) {
      if (!(key in api)) continue;
      t.equal(api[key], value, `${key} is ${name}'s`);
      checked++;
    }
  }
  t.equal(checked, Object.keys(api).length, 'every name was compared');
});
