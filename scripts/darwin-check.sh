#!/usr/bin/env bash
# Prove, on Linux, that the macOS backend compiles (-Wall -Wextra) and links for arm64 and
# x86_64 against Apple's SDK. Takes the SDK the way scripts/darwin-build.sh does:
#   MACOS_SDK=<extracted SDK> scripts/darwin-check.sh
#   DARWIN_SDK_GIT=<git dir of github:hexops/xcode-frameworks> scripts/darwin-check.sh
# The last line must read: darwin-check: N files, arm64 ok, x86_64 ok, link ok
exec "$(dirname "$0")/darwin-build.sh" --check "$@"
