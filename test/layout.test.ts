/**
 * The layout is what docs/ARCHITECTURE.md says it is: the Node-API glue in native/node/ and
 * nowhere else (the OS backends know nothing of Node), every directory and module the page's
 * layout block should name named, and every value the package exports in its API list.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..');
const architecture = fs.readFileSync(path.join(root, 'docs', 'ARCHITECTURE.md'), 'utf8');

/** The code of a C++ file without its comments. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
}

t.test('Node-API only in native/node/: no OS backend, model or table includes or names it', async (t) => {
  const files = fs.readdirSync(path.join(root, 'native'), { recursive: true, encoding: 'utf8' }).filter((f) => /\.(cc|h|inc)$/.test(f));
  const glue = files.filter((f) => f.startsWith(`node${path.sep}`));
  t.ok(glue.length >= 7, `the glue: ${glue.join(', ')}`);
  for (const file of files.filter((f) => !glue.includes(f))) {
    const text = code(fs.readFileSync(path.join(root, 'native', file), 'utf8'));
    t.notMatch(text, /#include\s*[<"](napi\.h|node_api\.h|js_native_api\.h)[>"]|\bNapi::|\bnapi_[a-z_]+\s*\(/, `native/${file} has no Node-API`);
  }
  const addon = fs.readFileSync(path.join(root, 'native', 'node', 'addon.cc'), 'utf8');
  t.match(addon, /#include <napi\.h>/, 'the glue is where Node-API is');
});

t.test('docs/ARCHITECTURE.md names every directory of native/ and src/ and every module of src/', async (t) => {
  const block = /## Layout\n\n```\n([\s\S]*?)```/.exec(architecture)?.[1] ?? '';
  t.ok(block.length > 0, 'the layout block');
  for (const dir of ['native', 'src']) {
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      if (entry.isDirectory()) t.match(block, new RegExp(`^\\s+${entry.name}/ `, 'm'), `${dir}/${entry.name}/`);
      else if (dir === 'src' && entry.name.endsWith('.ts')) t.match(block, new RegExp(`^\\s+${entry.name.replace('.', '\\.')} `, 'm'), `src/${entry.name}`);
    }
  }
  for (const file of fs.readdirSync(path.join(root, 'native', 'node'))) {
    const stem = file.replace(/\.(cc|h)$/, '');
    t.match(block, new RegExp(`\\b${stem}\\b`), `native/node/${file}`);
  }
});

t.test('docs/ARCHITECTURE.md\'s API list names every value the package exports', async (t) => {
  const api = /## The public API\n([\s\S]*?)\n## /.exec(architecture)?.[1] ?? '';
  // The built package, as a consumer gets it (`npm run build`).
  const values = Object.keys(await import(path.join(root, 'lib', 'index.js')));
  t.ok(values.length >= 20);
  for (const name of values) t.match(api, new RegExp(`\`${name}\\b`), name);
});
