#!/usr/bin/env bash
# `npm run prebuilds`: the prebuilt addons a release ships, in prebuildify's layout
# (prebuilds/<platform>-<arch>/iokit-snap.node), which node-gyp-build loads before it
# would compile anything. Run on a Linux machine:
#
#   linux-x64     prebuildify --napi --strip, natively (on an arm64 host: cross, see below)
#   linux-arm64   prebuildify --napi --strip --arch arm64 with the Debian cross toolchain
#                 (apt-get install g++-aarch64-linux-gnu: aarch64-linux-gnu-{gcc,g++,strip}),
#                 when it is installed; otherwise skipped with a note
#   darwin-arm64  scripts/darwin-build.sh: clang-14 and ld64.lld-14 against the macOS SDK
#   darwin-x64    (MACOS_SDK or DARWIN_SDK_GIT, see that script)
#
# musl (Alpine) is not built: Debian has no C++ cross toolchain for musl (musl-tools is C
# only), so on Alpine the install compiles from source. The glibc binary carries no libc
# tag, so node-gyp-build's install check finds it does not load there and builds instead.
#
# Every binary is checked with `file` against its folder's platform and architecture.
# PREBUILDS_SKIP_DARWIN=1 builds only the Linux ones.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(node -p process.arch)
rm -rf prebuilds
prebuildify=node_modules/.bin/prebuildify
[ -x "$prebuildify" ] || { echo "prebuilds: run npm ci first (prebuildify is a devDependency)" >&2; exit 1; }

# The cross build first, the native one last, so build/ is left for this machine.
declare -A TRIPLE=([x64]=x86_64-linux-gnu [arm64]=aarch64-linux-gnu)
declare -A DEBIAN=([x64]=g++-x86-64-linux-gnu [arm64]=g++-aarch64-linux-gnu)
for arch in x64 arm64; do
  [ "$arch" = "$host" ] && continue
  triple=${TRIPLE[$arch]}
  if command -v "$triple-g++" >/dev/null; then
    echo "prebuilds: linux-$arch with $triple-g++"
    CC=$triple-gcc CXX=$triple-g++ LINK=$triple-g++ "$prebuildify" --napi --strip --arch "$arch" --strip-bin "$triple-strip"
  else
    echo "prebuilds: linux-$arch skipped: no $triple-g++ (Debian: apt-get install ${DEBIAN[$arch]})"
  fi
done
echo "prebuilds: linux-$host"
"$prebuildify" --napi --strip

if [ "${PREBUILDS_SKIP_DARWIN:-0}" = 1 ]; then
  echo "prebuilds: darwin skipped (PREBUILDS_SKIP_DARWIN=1)"
else
  scripts/darwin-build.sh --out prebuilds
fi

# Each binary is what its folder says it is (node-gyp-build picks by the folder's name).
# (Linux's `file` says "Mach-O 64-bit arm64 bundle", macOS's "Mach-O 64-bit bundle arm64".)
declare -A EXPECT=(
  [linux-x64]='^ELF 64-bit LSB shared object, x86-64'
  [linux-arm64]='^ELF 64-bit LSB shared object, ARM aarch64'
  [darwin-arm64]='^Mach-O 64-bit (arm64 bundle|bundle arm64)'
  [darwin-x64]='^Mach-O 64-bit (x86_64 bundle|bundle x86_64)'
)
status=0
for dir in prebuilds/*/; do
  folder=$(basename "$dir")
  for binary in "$dir"*.node; do
    description=$(file -b "$binary")
    if [[ -n "${EXPECT[$folder]:-}" && $description =~ ${EXPECT[$folder]} ]]; then
      echo "prebuilds: ok   $binary: $description"
    else
      echo "prebuilds: FAIL $binary: $description (expected ${EXPECT[$folder]:-a known platform})" >&2
      status=1
    fi
  done
done
exit $status
