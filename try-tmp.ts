import * as fs from 'node:fs';
import { importReport } from './src/import/reports';
import { explain } from './src/explain';
import { explain as show } from './src/cli/explain';
for (const f of process.argv.slice(2)) {
  const r = explain(importReport(fs.readFileSync(f, 'utf8')));
  console.log('== ' + f.split('/').pop()); console.log(show(r, { color: false }));
}
