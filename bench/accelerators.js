#!/usr/bin/env node
// sampleAccelerators (in-process sysfs + NVML) against systeminformation.graphics()
// (spawns lspci and friends, parses their text), in the same run. Budget: ≥ 100×.
// Also samples the fixture sysfs trees (test/fixtures/sys), so there are devices to
// read on a machine without a GPU, and the NVIDIA tree through the fake NVML when a
// C compiler is present. Needs `npm run build` first.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const si = require('systeminformation');
const { sampleAccelerators } = require('../lib');
const { median, msSince } = require('./lib');

const BUDGET = 100;

/** systeminformation's Linux graphics() is built on lspci; without it the peer does far less. */
function hasLspci() {
  try {
    execFileSync('lspci', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const PEER_REPEATS = 9;
const OURS_REPEATS = 201;
const FIXTURES = path.join(__dirname, '..', 'test', 'fixtures', 'sys');

async function timeMs(repeats, run) {
  await run(); // warm: first-call costs (binding load, dlopen, page cache) are not the steady state
  const samples = [];
  for (let i = 0; i < repeats; i++) {
    const start = process.hrtime.bigint();
    await run();
    samples.push(msSince(start));
  }
  return median(samples);
}

function buildFakeNvml(dir) {
  const library = path.join(dir, 'libnvidia-ml-fake.so');
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', library, path.join(__dirname, '..', 'test', 'fixtures', 'nvml-fake.c')], {
      stdio: 'pipe',
    });
  } catch {
    return null;
  }
  const config = path.join(dir, 'config');
  fs.writeFileSync(
    config,
    'device 0000:01:00.0 minor=0 gpu=37 mem=12 pstate=0 power=312000 total=85520809984 used=1073741824 name=NVIDIA H100 80GB HBM3\n',
  );
  process.env.IOKIT_SNAP_FAKE_NVML = config;
  return library;
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-bench-accel-'));
  try {
    const missingNvml = path.join(work, 'no-libnvidia-ml.so.1');
    // Each sample hands work between threads; on a loaded machine every handoff can
    // wait a scheduler tick, so say how loaded this one was.
    console.log(`load average ${os.loadavg()[0].toFixed(2)} on ${os.cpus().length} CPU(s)`);
    const peerMs = await timeMs(PEER_REPEATS, () => si.graphics());
    const peerCount = (await si.graphics()).controllers.length;
    console.log(`systeminformation.graphics(): ${peerMs.toFixed(2)} ms (median of ${PEER_REPEATS}), ${peerCount} controller(s)`);
    if (!hasLspci()) {
      console.log(
        'note: lspci is not installed, so graphics() skips the lspci run it is built on and the ratios below ' +
          'understate the peer; install pciutils for the comparison the budget means',
      );
    }

    const runs = [{ label: 'this machine (/sys)', options: {} }];
    for (const name of fs.readdirSync(FIXTURES).filter((n) => fs.statSync(path.join(FIXTURES, n)).isDirectory()).sort()) {
      runs.push({ label: `fixture ${name}`, options: { sysRoot: path.join(FIXTURES, name), nvmlLibrary: missingNvml } });
    }
    const fake = buildFakeNvml(work);
    if (fake) runs.push({ label: 'fixture nvidia-h100 + fake NVML', options: { sysRoot: path.join(FIXTURES, 'nvidia-h100'), nvmlLibrary: fake } });
    else console.log('(no C compiler: the fake-NVML run is skipped)');

    let missed = 0;
    for (const { label, options } of runs) {
      const devices = (await sampleAccelerators(options)).accelerators.length;
      const oursMs = await timeMs(OURS_REPEATS, () => sampleAccelerators(options));
      const ratio = peerMs / oursMs;
      const verdict = ratio >= BUDGET ? 'PASS' : 'MISS';
      if (verdict === 'MISS') missed++;
      console.log(
        `sampleAccelerators, ${label}: ${oursMs.toFixed(3)} ms (median of ${OURS_REPEATS}), ${devices} device(s); ` +
          `${ratio.toFixed(0)}× faster than graphics() — ${verdict} (budget ≥ ${BUDGET}×)`,
      );
    }
    process.exitCode = missed ? 1 : 0;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
