#!/usr/bin/env bash
# The release check: pack the package (after `npm run prebuilds`), install the tarball into a
# fresh project with no compiler, make or python on PATH, and run `npx iokit-snap --json`
# there. Proves the tarball carries working prebuilt addons of the right architectures and
# nothing a user does not need. Prints the tarball's size and file list.
#
# Usage: scripts/check-pack.sh [--keep]      (--keep leaves the work directory for a look)
# Needs: the npm registry (the package's dependencies), `file`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEEP=0; [ "${1:-}" = --keep ] && KEEP=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/iokit-snap-pack.XXXXXX")
[ $KEEP = 1 ] && echo "check-pack: work directory $WORK" || trap 'rm -rf "$WORK"' EXIT
fail() { echo "check-pack: FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------- the tarball
ls "$ROOT"/prebuilds/*/*.node >/dev/null 2>&1 || fail "no prebuilds/: run npm run prebuilds first"
(cd "$ROOT" && npm pack --silent --pack-destination "$WORK" >"$WORK/pack.out") || fail "npm pack failed"
TARBALL=$WORK/$(tail -1 "$WORK/pack.out")
[ -f "$TARBALL" ] || fail "npm pack wrote no tarball"
mkdir "$WORK/unpacked" && tar -xzf "$TARBALL" -C "$WORK/unpacked"
echo "check-pack: $(basename "$TARBALL"): $(stat -c %s "$TARBALL") bytes packed, $(du -sb "$WORK/unpacked/package" | cut -f1) bytes unpacked, $(tar -tzf "$TARBALL" | wc -l) files"
tar -tzvf "$TARBALL" | awk '{printf "  %9s  %s\n", $3, $6}' | sed 's#  package/#  #'

# The four a release ships (the CI's prebuild job builds exactly these), and nothing else.
# Linux's `file` says "Mach-O 64-bit arm64 bundle", macOS's "Mach-O 64-bit bundle arm64".
declare -A EXPECT=(
  [linux-x64]='^ELF 64-bit LSB shared object, x86-64'
  [linux-arm64]='^ELF 64-bit LSB shared object, ARM aarch64'
  [darwin-arm64]='^Mach-O 64-bit (arm64 bundle|bundle arm64)'
  [darwin-x64]='^Mach-O 64-bit (x86_64 bundle|bundle x86_64)'
)
for folder in linux-x64 linux-arm64 darwin-arm64 darwin-x64; do
  [ -f "$WORK/unpacked/package/prebuilds/$folder/iokit-snap.node" ] ||
    fail "the tarball has no prebuilds/$folder/iokit-snap.node (npm run prebuilds builds all four; linux-arm64 needs g++-aarch64-linux-gnu)"
done
for binary in "$WORK"/unpacked/package/prebuilds/*/*.node; do
  folder=$(basename "$(dirname "$binary")")
  description=$(file -b "$binary")
  [[ -n "${EXPECT[$folder]:-}" && $description =~ ${EXPECT[$folder]} ]] || fail "prebuilds/$folder: $description"
  echo "check-pack: prebuilds/$folder/$(basename "$binary"): $description"
done
[ "$(ls "$WORK/unpacked/package/prebuilds" | sort | tr '\n' ' ')" = 'darwin-arm64 darwin-x64 linux-arm64 linux-x64 ' ] ||
  fail "the tarball holds other prebuilds than the four: $(ls "$WORK/unpacked/package/prebuilds" | tr '\n' ' ')"
# docs/, examples/ and src/analyze/README.md ship on purpose (package.json "files"): the
# README links to them.
unwanted=$(tar -tzf "$TARBALL" | sed 's#^package/##' | grep -E '^(src|test|bench|scripts|build)/|^tsconfig|\.map$' |
  grep -vx 'src/analyze/README.md' || true)
[ -z "$unwanted" ] || fail "the tarball holds what users do not need: $unwanted"

# ---------------------------------------------------------------- a PATH without a toolchain
# Every command of this PATH, as symlinks, except compilers, make and python: if the install
# tried to build the addon (node-gyp), it would fail.
HIDDEN='^(cc|c\+\+|cpp(-[0-9]+)?|gcc.*|g\+\+.*|clang.*|.*-gcc(-[0-9.]+)?|.*-g\+\+(-[0-9.]+)?|.*-cc|make|gmake|python[0-9.]*(-config)?)$'
mkdir "$WORK/bin"
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -d "$dir" ] || continue
  for exe in "$dir"/*; do
    name=$(basename "$exe")
    [ -x "$exe" ] && [ ! -e "$WORK/bin/$name" ] && [[ ! $name =~ $HIDDEN ]] && ln -s "$exe" "$WORK/bin/$name"
  done
done
for tool in cc c++ g++ gcc make python3; do
  PATH=$WORK/bin command -v "$tool" >/dev/null && fail "$tool is still on the hidden PATH"
done
echo "check-pack: installing with PATH=$WORK/bin (no cc, c++, g++, gcc, clang, make, python3)"

# ---------------------------------------------------------------- install and run
mkdir "$WORK/consumer"
cd "$WORK/consumer"
PATH=$WORK/bin npm init -y >/dev/null
start=$(date +%s.%N)
PATH=$WORK/bin npm install --no-audit --no-fund --foreground-scripts "$TARBALL" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log"; fail "npm install of the tarball failed without a compiler"; }
echo "check-pack: installed in $(echo "$(date +%s.%N) - $start" | bc | xargs printf '%.1f') s"
[ ! -d node_modules/iokit-snap/build ] || fail "the install compiled the addon (node_modules/iokit-snap/build exists)"
loaded=$(PATH=$WORK/bin node -p "require('node-gyp-build').path(require('path').dirname(require.resolve('iokit-snap/package.json')))")
echo "check-pack: node-gyp-build loads $loaded"
[[ $loaded == */prebuilds/$(node -p 'process.platform + "-" + process.arch')/* ]] || fail "the addon that loads is not the prebuilt one"
PATH=$WORK/bin npx --no-install iokit-snap --json >"$WORK/snapshot.json" 2>"$WORK/stderr.txt" ||
  { cat "$WORK/stderr.txt"; fail "npx iokit-snap --json failed"; }
PATH=$WORK/bin node -e '
  const snap = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (snap.format !== "iokit-snap/1" || !Array.isArray(snap.accelerators)) process.exit(1);
  console.log(`check-pack: npx iokit-snap --json: ${snap.format}, host ${snap.host.platform}-${snap.host.arch}, ${snap.accelerators.length} accelerator(s), ${snap.limits.length} limit(s)`);
' "$WORK/snapshot.json" || fail "npx iokit-snap --json printed no iokit-snap/1 snapshot"
echo "check-pack: ok"
