#!/usr/bin/env bash
# Builds the addon with AddressSanitizer (and LeakSanitizer) and runs the tests
# that exercise the native code's lifetimes under it: thread churn against the
# reusable sampler, workers terminated inside probes, the fixture sysfs trees, the
# fixture procRoot, Linux user stacks (ptrace, the tracer process, the stack walk, the
# files a walk opens), the samplers' fd budget and queue (in processes of their own
# under a low ulimit -n), and the ELF reader on real and mutated ELF files.
# Any heap-use-after-free, overflow, double free or leak in the addon fails the run.
# Linux only; needs gcc's libasan.
#
#   npm run test:asan            (or: scripts/asan.sh [test files...])
#
# The build happens in a copy of the project under a temporary directory, so the
# worktree's own build/ (the one tests and benchmarks load) is left alone.
# Node itself is not built with ASan: libasan is preloaded into it, and the
# allocations Node and V8 never free at exit are suppressed by name in
# scripts/asan.supp (nothing of iokit-snap is suppressed there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(uname -s)" != Linux ]; then
  echo "asan.sh: Linux only" >&2
  exit 2
fi
LIBASAN="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$LIBASAN" ]; then
  echo "asan.sh: gcc's libasan.so was not found (apt-get install gcc, or libasan8)" >&2
  exit 2
fi
TESTS=("$@")
if [ ${#TESTS[@]} -eq 0 ]; then
  TESTS=(test/threads-churn.test.ts test/worker-termination.test.ts test/accelerators-linux.test.ts test/threads-procroot.test.ts test/threads-linux-stacks.test.ts test/stacks-safety.test.ts test/threads-fd-budget.test.ts test/sample.test.ts test/elf-file.test.ts test/elf-fuzz.test.ts)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/iokit-snap-asan.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "asan.sh: building the addon with -fsanitize=address in $WORK"
tar -C "$ROOT" --exclude=./node_modules --exclude=./build --exclude=./.git --exclude=./prebuilds -cf - . | tar -C "$WORK" -xf -
ln -s "$ROOT/node_modules" "$WORK/node_modules"
(
  cd "$WORK"
  GYP_DEFINES="iokit_snap_asan=1" npx node-gyp rebuild >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
  [ -d lib ] || npm run build >/dev/null
)
# Not `nm | grep -q` under pipefail: grep -q leaves at the first match, and nm, still
# writing, dies of SIGPIPE, which would fail the check on a good build now and then.
if ! grep -q "__asan_" <(nm -D "$WORK/build/Release/iokit_snap.node"); then
  echo "asan.sh: the addon was built without AddressSanitizer (GYP_DEFINES iokit_snap_asan=1 not applied?)" >&2
  exit 1
fi

# The test targets are compiled by the tests themselves; their compiler must not
# run with libasan preloaded (its leaks at exit are gcc's, not ours).
cat >"$WORK/cc" <<'CC'
#!/bin/sh
unset LD_PRELOAD
exec cc "$@"
CC
chmod +x "$WORK/cc"

export CC="$WORK/cc"
# libasan is preloaded into the test's node (and what it starts), not into this
# script's own tools.
# abort_on_error: a finding kills the process (so the test fails, whatever it was doing).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_odr_violation=0:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/asan.supp:print_suppressions=0"
# Run without the tap runner (it would preload libasan into itself too): a test
# file alone gets tap's default 30 s timeout, far too short under ASan.
export TAP_TIMEOUT="${TAP_TIMEOUT:-900}"
cd "$WORK"
status=0
for test in "${TESTS[@]}"; do
  echo "asan.sh: $test"
  if ! LD_PRELOAD="$LIBASAN" node --import="file://$ROOT/node_modules/@tapjs/typescript/dist/esm/import.mjs" \
    --import="file://$ROOT/node_modules/@tapjs/mock/dist/esm/import.mjs" --enable-source-maps "$test" >"$WORK/out.log" 2>&1; then
    status=1
  fi
  if [ $status -ne 0 ] || grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|^not ok" "$WORK/out.log"; then
    status=1
    grep -E -A60 "ERROR: (AddressSanitizer|LeakSanitizer)" "$WORK/out.log" | head -120 || true
    grep -E "^ *not ok|# (fail|skip)" "$WORK/out.log" | head -20 || true
    # Neither a finding nor a failed assertion: how the process ended says why.
    grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|^ *not ok" "$WORK/out.log" || tail -30 "$WORK/out.log"
    kept="${TMPDIR:-/tmp}/iokit-snap-asan-$(basename "$test" .ts).log"
    cp "$WORK/out.log" "$kept"
    echo "asan.sh: $test FAILED (its whole output: $kept)"
    break
  fi
  grep -E "^# \{|^# time" "$WORK/out.log" | tail -2 | tr '\n' ' ' || true
  echo
done
if [ $status -eq 0 ]; then echo "asan.sh: no AddressSanitizer or LeakSanitizer error in ${#TESTS[@]} test files"; fi
exit $status
