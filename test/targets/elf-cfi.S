/*
 * Hand-written CFI for the ELF reader's tests (x86_64): every DWARF call-frame
 * instruction the reader interprets, including those compilers rarely emit, written
 * with .cfi directives or raw with .cfi_escape. Each `nop` starts a new row, so
 * readelf --debug-dump=frames-interp prints one row per instruction to compare with.
 * Built with -nostdlib -static; never run.
 */
        .text
        .globl  _start
        .type   _start, @function
_start:
        .cfi_startproc
        .cfi_undefined %rip
        hlt
        .cfi_endproc
        .size   _start, .-_start

        .globl  cfi_every_rule
        .type   cfi_every_rule, @function
cfi_every_rule:
        .cfi_startproc
        .cfi_signal_frame
        .cfi_personality 0x9b, personality_pointer  /* indirect|pcrel|sdata4 */
        .cfi_lsda 0x1b, lsda_data
        push    %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_offset %rbp, -16
        mov     %rsp, %rbp
        .cfi_def_cfa_register %rbp
        .cfi_remember_state
        nop
        .cfi_register %rip, %rax                  /* return address in another register */
        nop
        .cfi_restore_state
        nop
        .cfi_val_offset %rip, -8
        nop
        .cfi_restore %rip                         /* back to the CIE's rule */
        nop
        .cfi_undefined %rip
        nop
        .cfi_same_value %rip
        nop
        .cfi_offset %rip, -8
        .cfi_escape 0x2f, 0x06, 0x02              /* GNU_negative_offset_extended rbp, 2 */
        nop
        .cfi_escape 0x2e, 0x10                    /* GNU_args_size 16 */
        nop
        .cfi_escape 0x05, 0x06, 0x03              /* offset_extended rbp, 3 */
        nop
        .cfi_escape 0x06, 0x06                    /* restore_extended rbp */
        nop
        .cfi_escape 0x11, 0x06, 0x7e              /* offset_extended_sf rbp, -2 */
        nop
        .cfi_escape 0x12, 0x07, 0x7e              /* def_cfa_sf rsp, -2 */
        nop
        .cfi_escape 0x13, 0x7d                    /* def_cfa_offset_sf -3 */
        nop
        .cfi_escape 0x15, 0x10, 0x7f              /* val_offset_sf rip, -1 */
        nop
        .cfi_offset %rip, -8
        .cfi_escape 0x10, 0x06, 0x01, 0x30        /* expression rbp: DW_OP_lit0 */
        nop
        .cfi_escape 0x16, 0x03, 0x01, 0x30        /* val_expression rbx (not tracked) */
        nop
        .cfi_escape 0x0f, 0x02, 0x77, 0x08        /* def_cfa_expression DW_OP_breg7 8 */
        nop
        .cfi_def_cfa %rsp, 8
        nop
        .cfi_def_cfa %rax, 8                      /* CFA on a register a walk does not have */
        nop
        .cfi_def_cfa %rsp, 16
        .cfi_escape 0x08, 0x06                    /* same_value rbp */
        nop
        .cfi_escape 0x09, 0x06, 0x03              /* register rbp, rbx */
        nop
        .cfi_escape 0x07, 0x06                    /* undefined rbp */
        .skip   300, 0x90                         /* advance_loc2 */
        .cfi_def_cfa_offset 24
        .skip   70000, 0x90                       /* advance_loc4 */
        .cfi_def_cfa_offset 32
        nop
        .cfi_escape 0x00                          /* nop */
        .cfi_def_cfa_offset 8
        ret
        .cfi_endproc
        .size   cfi_every_rule, .-cfi_every_rule

        .section .rodata
lsda_data:
        .quad   0
        .data
personality_pointer:
        .quad   0
