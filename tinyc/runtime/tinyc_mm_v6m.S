/* Matrix micro-kernels for Cortex-M0+ (ARMv6-M), over the unsigned pair layout
 * (TINYC_WL_UPAIRS in tinyc_nn.h): rows and weights hold x + 128, so LDRB with an
 * immediate offset reads every operand. ARMv6-M has no multiply-accumulate: a product is
 * MULS (which overwrites one operand: a copy is kept where a value is used again) and an
 * ADD into an accumulator in a high register. 13 instructions per 4 products, 5 per
 * 16-product group for the pointers and the loop.
 */
#if defined(__ARM_ARCH_6M__)

    .syntax unified
    .thumb
    .text

/* void tinyc_mm2x2_v6m(const uint8_t *r0, const uint8_t *r1, const uint8_t *w,
 *                      int32_t groups, int32_t *acc);
 * acc[0..3] += {r0 . wa, r0 . wb, r1 . wa, r1 . wb}; w: per group channel a's 4 bytes,
 * then channel b's. groups >= 0. */
    .global tinyc_mm2x2_v6m
    .type tinyc_mm2x2_v6m, %function
    .align 2
tinyc_mm2x2_v6m:
    push    {r4, r5, r6, r7, lr}
    mov     r4, r8
    mov     r5, r9
    mov     r6, r10
    mov     r7, r11
    push    {r4, r5, r6, r7}
    ldr     r4, [sp, #36]           /* acc */
    ldr     r5, [r4, #0]
    mov     r8, r5
    ldr     r5, [r4, #4]
    mov     r9, r5
    ldr     r5, [r4, #8]
    mov     r10, r5
    ldr     r5, [r4, #12]
    mov     r11, r5
    lsls    r3, r3, #2
    adds    r3, r0, r3
    mov     r12, r3                 /* the end of row 0 */
    cmp     r0, r3
    beq     2f
1:
    .irp b, 0, 1, 2, 3
    ldrb    r3, [r0, #\b]
    ldrb    r4, [r1, #\b]
    ldrb    r5, [r2, #\b]
    ldrb    r6, [r2, #(4 + \b)]
    movs    r7, r5
    muls    r7, r3, r7              /* r0 x wa */
    add     r8, r7
    muls    r5, r4, r5              /* r1 x wa */
    add     r10, r5
    muls    r3, r6, r3              /* r0 x wb */
    add     r9, r3
    muls    r6, r4, r6              /* r1 x wb */
    add     r11, r6
    .endr
    adds    r0, #4
    adds    r1, #4
    adds    r2, #8
    cmp     r0, r12
    bne     1b
2:
    ldr     r4, [sp, #36]
    mov     r5, r8
    str     r5, [r4, #0]
    mov     r5, r9
    str     r5, [r4, #4]
    mov     r5, r10
    str     r5, [r4, #8]
    mov     r5, r11
    str     r5, [r4, #12]
    pop     {r4, r5, r6, r7}
    mov     r8, r4
    mov     r9, r5
    mov     r10, r6
    mov     r11, r7
    pop     {r4, r5, r6, r7, pc}
    .size tinyc_mm2x2_v6m, . - tinyc_mm2x2_v6m

/* void tinyc_mm1x4_v6m(const uint8_t *r, const uint8_t *w, int32_t groups, int32_t *acc,
 *                      const uint8_t *w2);
 * acc[0..3] += {r . wa, r . wb, r . wc, r . wd}: pairs (a, b) at w and (c, d) at w2. */
    .global tinyc_mm1x4_v6m
    .type tinyc_mm1x4_v6m, %function
    .align 2
tinyc_mm1x4_v6m:
    push    {r3, r4, r5, r6, r7, lr}
    mov     r4, r8
    mov     r5, r9
    mov     r6, r10
    mov     r7, r11
    push    {r4, r5, r6, r7}
    ldm     r3!, {r4, r5, r6, r7}
    mov     r8, r4
    mov     r9, r5
    mov     r10, r6
    mov     r11, r7
    lsls    r2, r2, #2
    adds    r2, r0, r2
    mov     r12, r2                 /* the end of the row */
    ldr     r2, [sp, #40]           /* w2 */
    cmp     r0, r12
    beq     2f
1:
    .irp b, 0, 1, 2, 3
    ldrb    r3, [r0, #\b]
    ldrb    r4, [r1, #\b]
    ldrb    r5, [r1, #(4 + \b)]
    ldrb    r6, [r2, #\b]
    ldrb    r7, [r2, #(4 + \b)]
    muls    r4, r3, r4
    add     r8, r4
    muls    r5, r3, r5
    add     r9, r5
    muls    r6, r3, r6
    add     r10, r6
    muls    r7, r3, r7
    add     r11, r7
    .endr
    adds    r0, #4
    adds    r1, #8
    adds    r2, #8
    cmp     r0, r12
    bne     1b
2:
    ldr     r3, [sp, #16]           /* acc */
    mov     r4, r8
    mov     r5, r9
    mov     r6, r10
    mov     r7, r11
    stm     r3!, {r4, r5, r6, r7}
    pop     {r4, r5, r6, r7}
    mov     r8, r4
    mov     r9, r5
    mov     r10, r6
    mov     r11, r7
    pop     {r3, r4, r5, r6, r7, pc}
    .size tinyc_mm1x4_v6m, . - tinyc_mm1x4_v6m

#endif

/* host builds assemble this file empty: say its stack is not executable */
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
