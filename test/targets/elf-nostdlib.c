/*
 * A program without the C library or its start files, for the ELF reader's tests:
 * built with -nostdlib -static (x86_64 with cc, arm64 with clang and lld), so every
 * byte of CFI in it is this file's. Never run.
 */
volatile int elf_sink;

__attribute__((noinline)) int elf_leaf(int x) { return x * 3 + elf_sink; }

__attribute__((noinline)) int elf_framed(int n) {
  int total = 0;
  for (int i = 0; i < n; i++) total += elf_leaf(i);
  return total + elf_leaf(total);
}

__attribute__((noreturn)) void _start(void) {
  elf_sink = elf_framed(3);
  for (;;) {
  }
}
