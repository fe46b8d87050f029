/* Matrix micro-kernels for Cortex-M cores with the DSP extension (M4, M7, M33, M55).
 *
 * Rows are int8 activations expanded to int16 pairs: per group of 4 values two words
 * {values 0 and 2, values 1 and 3}. Weights are int8, pairs of output channels
 * interleaved per group: {channel a bytes 0..3, channel b bytes 0..3}. SXTB16 splits a
 * weight word into the same {0,2} / {1,3} pairs, so one SMLAD multiplies two matching
 * products. Four groups per loop pass; the pass counter lives on the stack so that every
 * register can hold data.
 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

    .syntax unified
    .thumb
    .text

/* acc[0..5] (a00, a01, a10, a11, a20, a21) = bias pair + three interleaved rows
 * {r0e, r0o, r1e, r1o, r2e, r2o per group} times one channel pair, over `groups` groups.
 *
 * void tinyc_mm3x2(const uint32_t *rows, const uint32_t *w, int32_t groups,
 *                  int32_t *acc, const int32_t *bias2);   (bias2 on the stack)
 */
    .global tinyc_mm3x2
    .type tinyc_mm3x2, %function
    .align 2
tinyc_mm3x2:
    push    {r3, r4, r5, r6, r7, r8, r9, r10, r11, lr}
    ldr     r4, [sp, #40]           /* bias2 */
    ldrd    r4, r5, [r4]
    mov     r6, r4
    mov     r7, r5
    mov     r8, r4
    mov     r9, r5
    and     r3, r2, #3              /* leftover groups first, one at a time */
    lsr     r2, r2, #2
    push    {r2}                    /* passes of four groups */
    cmp     r3, #0
    beq     .L3_quads
.L3_single:
    ldrd    r10, r12, [r1], #8
    sxtb16  r11, r10
    sxtb16  r10, r10, ror #8
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    push    {r3}
    ldrd    r2, r3, [r0], #8
    smlad   r4, r2, r11, r4
    smlad   r4, r3, r10, r4
    smlad   r5, r2, lr, r5
    smlad   r5, r3, r12, r5
    ldrd    r2, r3, [r0], #8
    smlad   r6, r2, r11, r6
    smlad   r6, r3, r10, r6
    smlad   r7, r2, lr, r7
    smlad   r7, r3, r12, r7
    ldrd    r2, r3, [r0], #8
    smlad   r8, r2, r11, r8
    smlad   r8, r3, r10, r8
    smlad   r9, r2, lr, r9
    smlad   r9, r3, r12, r9
    pop     {r3}
    subs    r3, r3, #1
    bne     .L3_single
.L3_quads:
    ldr     r2, [sp]
    cmp     r2, #0
    beq     .L3_done
.L3_loop:
    .rept 4
    ldrd    r10, r12, [r1], #8
    sxtb16  r11, r10
    sxtb16  r10, r10, ror #8
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    ldrd    r2, r3, [r0], #8
    smlad   r4, r2, r11, r4
    smlad   r4, r3, r10, r4
    smlad   r5, r2, lr, r5
    smlad   r5, r3, r12, r5
    ldrd    r2, r3, [r0], #8
    smlad   r6, r2, r11, r6
    smlad   r6, r3, r10, r6
    smlad   r7, r2, lr, r7
    smlad   r7, r3, r12, r7
    ldrd    r2, r3, [r0], #8
    smlad   r8, r2, r11, r8
    smlad   r8, r3, r10, r8
    smlad   r9, r2, lr, r9
    smlad   r9, r3, r12, r9
    .endr
    ldr     r2, [sp]
    subs    r2, r2, #1
    str     r2, [sp]
    bne     .L3_loop
.L3_done:
    add     sp, sp, #4
    pop     {r3}
    stmia   r3, {r4, r5, r6, r7, r8, r9}
    pop     {r4, r5, r6, r7, r8, r9, r10, r11, pc}
    .size tinyc_mm3x2, . - tinyc_mm3x2

/* acc[0..3] = bias[0..3] + one row {e, o per group} times two channel pairs
 * (w2 = w + words per pair), over `groups` groups.
 *
 * void tinyc_mm1x4(const uint32_t *row, const uint32_t *w, int32_t groups,
 *                  int32_t *acc, const int32_t *bias4, const uint32_t *w2);
 */
    .global tinyc_mm1x4
    .type tinyc_mm1x4, %function
    .align 2
tinyc_mm1x4:
    push    {r3, r4, r5, r6, r7, r8, r9, r10, r11, lr}
    ldr     r4, [sp, #40]           /* bias4 */
    ldr     r9, [sp, #44]           /* w2 */
    ldm     r4, {r4, r5, r6, r7}
    and     r3, r2, #3              /* leftover groups first, one at a time */
    lsr     r2, r2, #2
    push    {r2}                    /* passes of four groups */
    cmp     r3, #0
    beq     .L1_quads
.L1_single:
    push    {r3}
    ldrd    r2, r3, [r0], #8
    ldrd    r10, r12, [r1], #8
    sxtb16  r11, r10
    sxtb16  r10, r10, ror #8
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r4, r2, r11, r4
    smlad   r4, r3, r10, r4
    smlad   r5, r2, lr, r5
    smlad   r5, r3, r12, r5
    ldrd    r10, r12, [r9], #8
    sxtb16  r11, r10
    sxtb16  r10, r10, ror #8
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r6, r2, r11, r6
    smlad   r6, r3, r10, r6
    smlad   r7, r2, lr, r7
    smlad   r7, r3, r12, r7
    pop     {r3}
    subs    r3, r3, #1
    bne     .L1_single
.L1_quads:
    ldr     r2, [sp]
    cmp     r2, #0
    beq     .L1_done
.L1_loop:
    .rept 4
    ldrd    r2, r3, [r0], #8
    ldrd    r10, r12, [r1], #8
    sxtb16  r11, r10
    sxtb16  r10, r10, ror #8
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r4, r2, r11, r4
    smlad   r4, r3, r10, r4
    smlad   r5, r2, lr, r5
    smlad   r5, r3, r12, r5
    ldrd    r10, r12, [r9], #8
    sxtb16  r11, r10
    sxtb16  r10, r10, ror #8
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r6, r2, r11, r6
    smlad   r6, r3, r10, r6
    smlad   r7, r2, lr, r7
    smlad   r7, r3, r12, r7
    .endr
    ldr     r2, [sp]
    subs    r2, r2, #1
    str     r2, [sp]
    bne     .L1_loop
.L1_done:
    add     sp, sp, #4
    pop     {r3}
    stmia   r3, {r4, r5, r6, r7}
    pop     {r4, r5, r6, r7, r8, r9, r10, r11, pc}
    .size tinyc_mm1x4, . - tinyc_mm1x4

#endif
