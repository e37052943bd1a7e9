// Writes lib/index.mjs: an ES module face over the CommonJS build, with every
// export named explicitly so `import { sampleThreads } from 'iokit-snap'` works.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const lib = path.join(__dirname, '..', 'lib');
const names = Object.keys(require(path.join(lib, 'index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
const body = [
  "import api from './index.js';",
  `export const { ${names.join(', ')} } = api;`,
  'export default api;',
  '',
].join('\n');
fs.writeFileSync(path.join(lib, 'index.mjs'), body);
