#!/usr/bin/env node
// Builds the darwin-logic harness (native/darwin compiled on this machine against
// the test-only macOS headers in include/ and the fake kernel), once per
// architecture the addon ships for, runs both, and ends with one line:
//   darwin-logic: <S> scenarios, <F> faults injected, suspensions <n> = resumes <n>, leaks 0
// Options: --emit <dir> (registry records as JSON), --verbose. Exit 0 only when every
// check passed. Without a C++ compiler it says so and exits 3 (the tap test skips).
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const os = require('node:os');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const here = __dirname;
const args = process.argv.slice(2);
const emitAt = args.indexOf('--emit');
const emitDir = emitAt >= 0 ? path.resolve(args[emitAt + 1]) : '';
const verbose = args.includes('--verbose');

const sources = [
  'native/darwin/accelerators.cc',
  'native/darwin/cf_property.cc',
  'native/darwin/registers.cc',
  'native/darwin/stacks.cc',
  'native/darwin/threads.cc',
  'native/blocking.cc',
  'native/darwin_decode.cc',
  'test/darwin-logic/fake_kernel.cc',
  'test/darwin-logic/fake_cf.cc',
  'test/darwin-logic/fake_iokit.cc',
  'test/darwin-logic/threads_scenarios.cc',
  'test/darwin-logic/registry_scenarios.cc',
  'test/darwin-logic/main.cc',
];
const registryDir = path.join(here, 'registry');
const registries = (fs.existsSync(registryDir) ? fs.readdirSync(registryDir) : [])
  .filter((name) => name.endsWith('.json'))
  .map((name) => path.join(registryDir, name));

function findCompiler() {
  for (const candidate of [process.env.CXX, 'g++', 'clang++'].filter(Boolean)) {
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  return null;
}

// -fsanitize=address where the compiler and this system can run it.
function sanitizerFlags(cxx, dir) {
  const probe = path.join(dir, 'asan-probe.cc');
  fs.writeFileSync(probe, 'int main() { return 0; }\n');
  const out = path.join(dir, 'asan-probe');
  const built = spawnSync(cxx, ['-fsanitize=address', probe, '-o', out], { encoding: 'utf8' });
  if (built.status === 0 && spawnSync(out).status === 0) return ['-fsanitize=address', '-fno-omit-frame-pointer'];
  console.log('# AddressSanitizer is not available here; building without it');
  return [];
}

function newest(files) {
  return Math.max(...files.map((file) => fs.statSync(file).mtimeMs));
}

// Run commands at most `jobs` at a time: the objects of both architectures compile in
// parallel, which halves the wall time on a 2-core machine.
async function runAll(commands, jobs) {
  const queue = [...commands];
  const worker = async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const [file, args] = next;
      const code = await new Promise((resolve) => spawn(file, args, { stdio: 'inherit' }).once('close', resolve));
      if (code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${code}`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
}

/** The binary of each architecture, compiled where older than its inputs. */
async function buildAll(cxx, arches, flags, dir) {
  const plans = arches.map((arch) => plan(cxx, arch, flags, dir));
  const stale = plans.filter((p) => !p.fresh);
  await runAll(stale.flatMap((p) => p.compiles), os.availableParallelism());
  await runAll(stale.map((p) => p.link), os.availableParallelism());
  return plans.map((p) => p.binary);
}

function plan(cxx, arch, flags, dir) {
  const binary = path.join(dir, `darwin-logic-${arch}`);
  const inputs = [
    ...sources.map((s) => path.join(root, s)),
    ...fs.readdirSync(path.join(root, 'native/darwin')).map((f) => path.join(root, 'native/darwin', f)),
    ...fs.readdirSync(here).filter((f) => /\.(h|cc)$/.test(f)).map((f) => path.join(here, f)),
    ...['mach/mach.h', 'libproc.h', 'sys/proc_info.h', 'sys/sysctl.h', 'CoreFoundation/CoreFoundation.h', 'IOKit/IOKitLib.h'].map((f) =>
      path.join(here, 'include', f),
    ),
  ];
  const fresh = fs.existsSync(binary) && fs.statSync(binary).mtimeMs > newest(inputs);
  // Each variant is the architecture it is named for whatever the host is: the arm64 one
  // defines __arm64__ (as Apple's compilers do), the x86_64 one undefines what an arm64
  // host's compiler predefines (__aarch64__ on Linux, __arm64__ too on macOS).
  const archFlags = arch === 'arm64' ? ['-D__arm64__=1'] : ['-U__aarch64__', '-U__arm64__'];
  const common = [
    '-std=c++17', '-O0', '-Wall', '-Wextra', '-pthread',
    '-I', path.join(here, 'include'), '-include', path.join(here, 'include', 'darwin_fake_prelude.h'),
    // The lock two samplers share (threads.cc): the harness's own, not the machine's.
    `-DIOKITSNAP_HOLD_LOCK_PATH="${path.join(dir, 'hold.lock')}"`,
    ...flags, ...archFlags,
  ];
  const objects = sources.map((source) => path.join(dir, `${arch}-${path.basename(source)}.o`));
  return {
    binary,
    fresh,
    compiles: sources.map((source, i) => [cxx, [...common, '-c', path.join(root, source), '-o', objects[i]]]),
    link: [cxx, [...common, ...objects, '-o', binary]],
  };
}

async function main() {
  const cxx = findCompiler();
  if (!cxx) {
    console.log('darwin-logic: no C++ compiler (g++ or clang++, or $CXX); nothing was run');
    process.exit(3);
  }
  const dir = path.join(root, 'build', 'darwin-logic');
  fs.mkdirSync(dir, { recursive: true });
  const flags = sanitizerFlags(cxx, dir);
  if (emitDir) fs.mkdirSync(emitDir, { recursive: true });
  const totals = { scenarios: 0, faults: 0, suspensions: 0, resumes: 0, leaks: 0, failures: 0 };
  let ok = true;
  const arches = ['x86_64', 'arm64'];
  const binaries = await buildAll(cxx, arches, flags, dir);
  for (const [i, arch] of arches.entries()) {
    const binary = binaries[i];
    const argv = [...registries.flatMap((r) => ['--registry', r]), ...(emitDir && arch === 'x86_64' ? ['--emit', emitDir] : []), ...(verbose ? ['--verbose'] : [])];
    const run = spawnSync(binary, argv, { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' }, maxBuffer: 64 << 20 });
    process.stdout.write(run.stdout);
    process.stderr.write(run.stderr);
    const last = /darwin-logic-\S+: (\d+) scenarios, (\d+) faults injected, suspensions (\d+) = resumes (\d+), leaks (\d+), failures (\d+)/.exec(run.stdout);
    if (run.status !== 0 || !last) {
      ok = false;
      console.log(`# the ${arch} harness exited ${run.status ?? run.signal}`);
    }
    if (last) {
      const [, s, f, su, re, le, fa] = last.map(Number);
      totals.scenarios += s;
      totals.faults += f;
      totals.suspensions += su;
      totals.resumes += re;
      totals.leaks += le;
      totals.failures += fa;
    }
  }
  ok = ok && totals.failures === 0 && totals.leaks === 0 && totals.suspensions === totals.resumes && totals.faults >= 100;
  console.log(
    `darwin-logic: ${totals.scenarios} scenarios, ${totals.faults} faults injected, suspensions ${totals.suspensions} = resumes ${totals.resumes}, leaks ${totals.leaks}` +
      (ok ? '' : ` (FAILED: ${totals.failures} failure(s))`),
  );
  process.exit(ok ? 0 : 1);
}

main().catch((error) => {
  console.log(`darwin-logic: the harness did not build: ${error.message}`);
  process.exit(1);
});
