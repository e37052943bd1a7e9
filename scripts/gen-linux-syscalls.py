#!/usr/bin/env python3
"""Generate native/syscalls_linux_{x86_64,arm64}.inc from the kernel UAPI headers.

The tables map a syscall number (what /proc/<pid>/task/<tid>/syscall prints first)
to its name, for the two architectures iokit-snap builds for. They are generated,
not typed, so a number can never drift from the kernel's:

  x86_64  <asm/unistd_64.h>       (arch/x86/entry/syscalls/syscall_64.tbl)
  arm64   <asm-generic/unistd.h>  (the generic table arm64 uses), preprocessed with
          the __ARCH_WANT_* switches of arch/arm64/include/uapi/asm/unistd.h

Usage:
  scripts/gen-linux-syscalls.py            rewrite the two .inc files
  scripts/gen-linux-syscalls.py --check    exit 1 when the committed files differ
  scripts/gen-linux-syscalls.py --json     print {"x86_64": {nr: name}, "arm64": {...}}
                                           (test/blocking-linux.test.ts compares the
                                           compiled tables against this view)
Options:
  --include DIR   where the UAPI headers live (default /usr/include)
  --cc CC         the C compiler used as a preprocessor (default $CC or cc)
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# arch/arm64/include/uapi/asm/unistd.h: the optional syscalls arm64 opts into.
ARM64_WANTS = [
    "__ARCH_WANT_RENAMEAT",
    "__ARCH_WANT_NEW_STAT",
    "__ARCH_WANT_SET_GET_RLIMIT",
    "__ARCH_WANT_TIME32_SYSCALLS",
    "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_MEMFD_SECRET",
]

# Markers and counters that share the __NR_ prefix but are not syscalls.
NOT_SYSCALLS = {"syscalls", "arch_specific_syscall"}

DEFINE = re.compile(r"^#define\s+__NR_(\w+)\s+(.+?)\s*$")


def x86_64_header(include_dir):
    for candidate in ("x86_64-linux-gnu/asm/unistd_64.h", "asm/unistd_64.h"):
        path = os.path.join(include_dir, candidate)
        if os.path.exists(path):
            return path
    sys.exit(f"gen-linux-syscalls: no asm/unistd_64.h under {include_dir} (install linux-libc-dev)")


def parse_x86_64(include_dir):
    path = x86_64_header(include_dir)
    table = {}
    with open(path, encoding="utf-8") as header:
        for line in header:
            match = DEFINE.match(line)
            if match and match.group(1) not in NOT_SYSCALLS:
                add(table, int(match.group(2), 0), match.group(1), path)
    return table, path


def parse_arm64(include_dir, cc):
    generic = os.path.join(include_dir, "asm-generic/unistd.h")
    if not os.path.exists(generic):
        sys.exit(f"gen-linux-syscalls: no {generic} (install linux-libc-dev)")
    # 64-bit, not compat: the view an arm64 build of the header gives. The header's only
    # include is <asm/bitsperlong.h>; a stand-in says 64 so the host's arch does not leak in.
    stub = "".join(f"#define {want}\n" for want in ARM64_WANTS) + "#include <asm-generic/unistd.h>\n"
    with tempfile.TemporaryDirectory() as scratch:
        os.makedirs(os.path.join(scratch, "asm"))
        with open(os.path.join(scratch, "asm", "bitsperlong.h"), "w") as bits:
            bits.write("#define __BITS_PER_LONG 64\n")
        source = os.path.join(scratch, "arm64.h")
        with open(source, "w") as out:
            out.write(stub)
        out = subprocess.run(
            [cc, "-E", "-dM", "-undef", "-nostdinc", "-I", scratch, "-isystem", include_dir, source],
            check=True, capture_output=True, text=True).stdout
    macros = {}
    for line in out.splitlines():
        match = DEFINE.match(line)
        if match:
            macros[match.group(1)] = match.group(2)
        elif line.startswith("#define __NR3264_"):
            name, value = line.split()[1:3]
            macros[name[len("__NR"):]] = value  # "3264_fcntl" → "25"

    def resolve(value, depth=0):
        if depth > 8:
            raise ValueError(f"macro loop at {value}")
        value = value.strip("() ")
        if re.fullmatch(r"\d+", value):
            return int(value)
        plus = re.fullmatch(r"__NR(\w+)\s*\+\s*(\d+)", value)
        if plus:
            return resolve(macros[plus.group(1).lstrip("_")], depth + 1) + int(plus.group(2))
        if value.startswith("__NR3264_"):
            return resolve(macros[value[len("__NR"):]], depth + 1)
        if value.startswith("__NR_"):
            return resolve(macros[value[len("__NR_"):]], depth + 1)
        raise ValueError(f"cannot evaluate {value!r}")

    table = {}
    for name, value in macros.items():
        if name in NOT_SYSCALLS or name.startswith("3264_"):
            continue
        add(table, resolve(value), name, generic)
    return table, generic


def add(table, number, name, source):
    if number in table and table[number] != name:
        sys.exit(f"gen-linux-syscalls: {source} gives number {number} to both {table[number]} and {name}")
    table[number] = name


def render(table, arch, source):
    lines = [
        f"// Linux {arch} syscall numbers → names. GENERATED by scripts/gen-linux-syscalls.py",
        f"// from {source}; do not edit. Sorted by number (blocking.cc binary-searches it).",
    ]
    row = []
    width = 0
    for number in sorted(table):
        entry = f'{{{number}, "{table[number]}"}},'
        if row and width + len(entry) + 1 > 110:
            lines.append(" ".join(row))
            row, width = [], 0
        row.append(entry)
        width += len(entry) + 1
    if row:
        lines.append(" ".join(row))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--include", default="/usr/include")
    parser.add_argument("--cc", default=os.environ.get("CC", "cc"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--json", action="store_true")
    args = parser.parse_args()

    x86, x86_source = parse_x86_64(args.include)
    arm, arm_source = parse_arm64(args.include, args.cc)
    if args.json:
        json.dump({"x86_64": {str(k): v for k, v in sorted(x86.items())},
                   "arm64": {str(k): v for k, v in sorted(arm.items())}}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    outputs = {
        os.path.join(ROOT, "native", "syscalls_linux_x86_64.inc"): render(x86, "x86_64", x86_source),
        os.path.join(ROOT, "native", "syscalls_linux_arm64.inc"): render(arm, "arm64", arm_source),
    }
    stale = []
    for path, text in outputs.items():
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as out:
                out.write(text)
            print(f"wrote {os.path.relpath(path, ROOT)} ({text.count('{')} calls)")
    if stale:
        print("out of date (run scripts/gen-linux-syscalls.py):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
