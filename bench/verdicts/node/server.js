/*
 * Node programs in known states for bench/verdicts.js and test/verdicts-*.test.ts.
 *
 *   node server.js idle        an http server on 127.0.0.1:0, idle in its event loop
 *   node server.js frozen      the same, but the handler for /sleep blocks the one thread
 *                              for 40 s (Atomics.wait: a futex wait with a timeout); the loop
 *                              answers nothing meanwhile
 *   node server.js load URL N  a load generator: N keep-alive clients requesting URL in a loop
 *
 * The servers print one line, "ready pid=N port=P", once they listen.
 */
'use strict';
const http = require('node:http');

function serve(frozen) {
  const server = http.createServer((request, response) => {
    if (frozen && request.url === '/sleep') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 40000);
    response.end('ok\n');
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`ready pid=${process.pid} port=${server.address().port}\n`);
  });
}

function load(url, clients) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  let done = 0;
  const one = () => {
    http
      .get(url, { agent }, (response) => {
        response.resume();
        response.on('end', () => {
          done++;
          setImmediate(one);
        });
      })
      .on('error', () => setTimeout(one, 100));
  };
  for (let i = 0; i < clients; i++) one();
  setInterval(() => process.stdout.write(`requests=${done}\n`), 1000);
}

const [mode, url, clients] = process.argv.slice(2);
if (mode === 'idle' || mode === 'frozen') serve(mode === 'frozen');
else if (mode === 'load' && url !== undefined) load(url, Number(clients) || 8);
else {
  process.stderr.write('usage: node server.js idle | frozen | load URL [N]\n');
  process.exitCode = 2;
}
