/*
 * Functions of known shapes for the ELF reader's tests (test/elf-file.test.ts): built
 * with and without frame pointers, unwind tables and debug information, then checked
 * against nm and readelf. Never run for its behaviour; main only keeps it all linked.
 */
#include <alloca.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A function symbol without a size (as hand-written assembly often has), then a
 * symbol that is not a function, then a sized function: the size-0 one names only
 * the bytes before the next symbol. And a size-0 function symbol in data, which names
 * nothing (it is not in an executable section). */
__asm__(".text\n"
        ".globl elf_bare_asm\n"
        ".type elf_bare_asm, @function\n"
        "elf_bare_asm:\n"
        "  ret\n  nop\n  nop\n  nop\n"
        ".globl elf_text_marker\n"
        "elf_text_marker:\n"
        "  nop\n  nop\n"
        ".globl elf_after_bare\n"
        ".type elf_after_bare, @function\n"
        "elf_after_bare:\n"
        "  ret\n"
        ".size elf_after_bare, .-elf_after_bare\n"
        ".section .rodata\n"
        ".globl elf_function_in_data\n"
        ".type elf_function_in_data, @function\n"
        "elf_function_in_data:\n"
        "  .byte 1, 2, 3, 4\n"
        ".text\n");

volatile int elf_sink;

static __attribute__((noinline)) int elf_leaf(int x) { return x * 7 + elf_sink; }

__attribute__((noinline)) int elf_recursive(int depth) {
  if (depth <= 0) return elf_leaf(depth);
  char buffer[64];
  snprintf(buffer, sizeof buffer, "%d", depth);
  return elf_recursive(depth - 1) + (int)strlen(buffer);
}

/* A variable-sized frame: the CFA must follow the frame pointer. */
__attribute__((noinline)) int elf_dynamic_frame(int n) {
  char* scratch = alloca((size_t)n + 16);
  memset(scratch, n, (size_t)n + 16);
  return scratch[n / 2] + elf_leaf(n);
}

__attribute__((noinline)) int elf_varargs(int count, ...) {
  va_list list;
  va_start(list, count);
  int sum = 0;
  for (int i = 0; i < count; i++) sum += va_arg(list, int);
  va_end(list);
  return sum;
}

__attribute__((weak, noinline)) int elf_weak(int x) { return x + 1; }

static int elf_ifunc_impl(int x) { return x - 1; }
static int (*elf_resolve(void))(int) { return elf_ifunc_impl; }
int elf_ifunc(int x) __attribute__((ifunc("elf_resolve")));

int main(int argc, char** argv) {
  (void)argv;
  return elf_recursive(argc) + elf_dynamic_frame(argc * 8) + elf_varargs(3, argc, 2, 3) + elf_weak(argc) +
         elf_ifunc(argc);
}
