#!/usr/bin/env node
/*
 * How long the `iokit-snap` command takes to start and finish, against its peer in the same
 * run (docs/ARCHITECTURE.md, performance budgets): `node -e 0`, the least a Node program
 * costs. Each command runs in pairs with the peer (peer, command, peer, command, …, after a
 * warm-up of each) and the figure is the median of the per-pair differences, so a change of
 * load during the run moves both sides of a pair. Each run is timed by bench/lib/rusage.c: wall
 * time from fork to reap (the budget), and the CPU time the kernel accounted to it (printed
 * beside it: on a machine shared with other work it moves less than wall time does).
 *
 *
 *   iokit-snap --json          the default command: the accelerators, as JSON   budget: <= 25 ms over node -e 0
 *   iokit-snap threads PID     one sample of a 4-thread process (a real target)  budget: <= 25 ms over node -e 0
 *   iokit-snap --help          the overview                                      budget: <= 25 ms over node -e 0
 *
 * What a command costs beyond Node itself is loading what it needs (its own module, the
 * native addon, the reader it calls) and its own work; every other command, prom-client, the
 * importers and the analysis stay unloaded unless the command uses them.
 *
 * Build first:  npm run build
 * Run:          node bench/cli-start.js [--runs N]
 * Exit code 1 when a budget is missed. The threads row needs Linux or macOS and a C compiler.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');
const { compileC, median, option, startTarget } = require('./lib');

const ROOT = path.join(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'iokit-snap.js');
const BUDGET_MS = 25;

let rusage;

/** One run of node with `args`, output thrown away: { wall, cpu } in ms; throws when it fails. */
function run(args) {
  rusage ??= compileC(path.join(__dirname, 'lib', 'rusage.c'), 'rusage');
  const result = spawnSync(rusage, [process.execPath, ...args], { encoding: 'utf8' });
  const m = /wall_us=(\d+) user_us=(\d+) sys_us=(\d+) status=(\d+)/.exec(result.stdout);
  if (m === null || m[4] !== '0') throw new Error(`node ${args.join(' ')} failed: ${result.stdout}${result.stderr}`);
  return { wall: Number(m[1]) / 1000, cpu: (Number(m[2]) + Number(m[3])) / 1000 };
}

/**
 * Every command against `node -e 0` in `runs` pairs each, the commands interleaved round by
 * round; returns per command { label, peer, ours, over } (medians, ms).
 */
async function measureStart({ runs = 15 } = {}) {
  const target = compileC(path.join(ROOT, 'test', 'targets', 'target.c'), 'target');
  const { child, pid } = await startTarget(target, ['threads', '3']);
  try {
    const commands = [
      { label: 'iokit-snap --json', args: [BIN, '--json'] },
      { label: 'iokit-snap threads PID', args: [BIN, 'threads', String(pid)] },
      { label: 'iokit-snap --help', args: [BIN, '--help'] },
    ];
    const peer = ['-e', '0'];
    for (const c of commands) {
      run(peer); // warm-up: the page cache, the addon's first load
      run(c.args);
      c.runs = [];
    }
    for (let round = 0; round < runs; round++) {
      for (const c of commands) {
        // Alternate which side of the pair goes first, so neither always follows the other.
        const first = round % 2 === 0;
        const a = first ? run(peer) : run(c.args);
        const b = first ? run(c.args) : run(peer);
        c.runs.push(first ? { peer: a, ours: b } : { peer: b, ours: a });
      }
    }
    const figure = (c, key) => ({
      peer: median(c.runs.map((r) => r.peer[key])),
      ours: median(c.runs.map((r) => r.ours[key])),
      over: median(c.runs.map((r) => r.ours[key] - r.peer[key])),
    });
    return commands.map((c) => ({ label: c.label, ...figure(c, 'wall'), cpu: figure(c, 'cpu') }));
  } finally {
    child.kill('SIGKILL');
  }
}

async function main() {
  const runs = option('runs', 21);
  console.log(`iokit-snap cold start vs node -e 0: ${runs} pairs per command, ${os.cpus().length} CPUs, Node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`);
  const rows = await measureStart({ runs });
  const pad = (text, width) => String(text).padEnd(width);
  const num = (value) => value.toFixed(1).padStart(10);
  console.log(`${pad('', 26)}${'ours ms'.padStart(10)}${'peer ms'.padStart(10)}${'over ms'.padStart(10)}   ${pad('budget', 18)}      ${'CPU: ours'.padStart(10)}${'peer'.padStart(8)}${'over'.padStart(8)}`);
  let missed = false;
  for (const row of rows) {
    const pass = row.over <= BUDGET_MS;
    missed ||= !pass;
    console.log(
      `${pad(row.label, 26)}${num(row.ours)}${num(row.peer)}${num(row.over)}   ${pad(`<= ${BUDGET_MS} ms over`, 18)}${pass ? 'PASS' : 'MISS'}  ` +
        `${num(row.cpu.ours)}${row.cpu.peer.toFixed(1).padStart(8)}${row.cpu.over.toFixed(1).padStart(8)}`,
    );
  }
  console.log('(wall time from fork to reap; ours and peer: medians of each side; over: the median of the per-pair differences)');
  if (missed) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 2;
  });
}

module.exports = { measureStart, BUDGET_MS };
