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

/* A whole fully-connected layer for one row: out[c] = clamp(rdbpot(srdhm(bias[c] +
 * row . w(c), mult[c]), shift[c]) + zp), TFLite's requantization with right shifts only,
 * for accumulators below 2^30 in magnitude (tinyc checks the bound), so that SRDHM is
 * SMMULR of the doubled accumulator. Channels go in quads (two pairs); a short last quad
 * repeats its first pair and stores only the channels that exist. Records per pair
 * {bias a, bias b, mult a, mult b, shift a, shift b}, the shifts as right-shift amounts
 * (>= 1); rq = {zp, lo, hi, mult, shift}, the last two used by the per-tensor variants.
 * One function per activation clamp (_n none: SSAT alone, _l a lower bound, _h an upper,
 * _lh both), and _t variants for per-tensor requantization (mult and shift in registers).
 *
 * void tinyc_fc1_dsp_<clamp>[_t](const uint32_t *row, const uint32_t *w, int32_t groups,
 *                                int32_t out_c, const int32_t *q, const int32_t *rq,
 *                                int8_t *out);
 * Frame: [sp] row, [sp+4] groups, [sp+8] channels left, [sp+12] bytes per pair,
 * [sp+16] records, [sp+20] out; the stack arguments at [sp+60].
 */
.macro FC1_GROUP
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
.endm

/* requantize accumulator \acc and store it at [r0], #1; per channel: multiplier and
 * shift at \q + 8 + \off and \q + 16 + \off; per tensor (\pt): in r8 and r10.
 * r11 = zp, r12 = lo, lr = hi */
.macro FC1_RQ acc, q, off, lo, hi, pt
    .if \pt
    lsls    \acc, \acc, #1
    smmulr  \acc, \acc, r8
    add     \acc, \acc, \acc, asr #31
    asrs    \acc, \acc, r10
    .else
    ldr     r3, [\q, #(8 + \off)]
    lsls    \acc, \acc, #1
    smmulr  \acc, \acc, r3
    ldr     r3, [\q, #(16 + \off)]
    add     \acc, \acc, \acc, asr #31
    asrs    \acc, \acc, r3
    .endif
    adc     \acc, \acc, r11               /* the rounding carry and the zero point */
    .if \lo * \hi == 0
    ssat    \acc, #8, \acc
    .endif
    .if \lo
    cmp     \acc, r12
    it      lt
    movlt   \acc, r12
    .endif
    .if \hi
    cmp     \acc, lr
    it      gt
    movgt   \acc, lr
    .endif
    strb    \acc, [r0], #1
.endm

.macro FC1 name, lo, hi, pt
    .section .text.\name, "ax", %progbits
    .global \name
    .type \name, %function
    .align 2
\name:
    push    {r4, r5, r6, r7, r8, r9, r10, r11, lr}
    sub     sp, sp, #24
    str     r0, [sp]
    str     r2, [sp, #4]
    str     r3, [sp, #8]
    lsls    r2, r2, #3
    str     r2, [sp, #12]
    ldr     r2, [sp, #60]
    str     r2, [sp, #16]
    ldr     r2, [sp, #68]
    str     r2, [sp, #20]
1:  /* a quad: r1 = its first pair's weights, r9 = the second pair's */
    ldr     r8, [sp, #16]
    ldr     r3, [sp, #8]
    ldr     r9, [sp, #12]
    add     r9, r1, r9
    add     r10, r8, #24
    cmp     r3, #2
    itt     le
    movle   r9, r1
    movle   r10, r8
    ldrd    r4, r5, [r8]
    ldrd    r6, r7, [r10]
    ldr     r0, [sp]
    ldr     r8, [sp, #4]
    ands    r8, r8, #7              /* leftover groups first, one at a time */
    beq     3f
2:  FC1_GROUP
    subs    r8, r8, #1
    bne     2b
3:  ldr     r8, [sp, #4]
    lsrs    r8, r8, #3
    beq     5f
4:  .rept 8
    FC1_GROUP
    .endr
    subs    r8, r8, #1
    bne     4b
5:  /* requantize and store; r1 = the next quad's weights, r9 = channels left */
    mov     r1, r9
    ldr     r9, [sp, #8]
    ldr     r0, [sp, #64]
    ldr     r11, [r0]
    .if \lo
    ldr     r12, [r0, #4]
    .endif
    .if \hi
    ldr     lr, [r0, #8]
    .endif
    .if \pt
    ldr     r8, [r0, #12]
    ldr     r10, [r0, #16]
    .else
    ldr     r8, [sp, #16]
    add     r10, r8, #24
    .endif
    ldr     r0, [sp, #20]
    FC1_RQ  r4, r8, 0, \lo, \hi, \pt
    cmp     r9, #1
    beq     6f
    FC1_RQ  r5, r8, 4, \lo, \hi, \pt
    cmp     r9, #2
    beq     6f
    FC1_RQ  r6, r10, 0, \lo, \hi, \pt
    cmp     r9, #3
    beq     6f
    FC1_RQ  r7, r10, 4, \lo, \hi, \pt
    cmp     r9, #4
    beq     6f
    str     r0, [sp, #20]
    ldr     r8, [sp, #16]
    add     r8, r8, #48
    str     r8, [sp, #16]
    subs    r9, r9, #4
    str     r9, [sp, #8]
    b       1b
6:  add     sp, sp, #24
    pop     {r4, r5, r6, r7, r8, r9, r10, r11, pc}
    .size \name, . - \name
.endm

    FC1 tinyc_fc1_dsp_n, 0, 0, 0
    FC1 tinyc_fc1_dsp_l, 1, 0, 0
    FC1 tinyc_fc1_dsp_h, 0, 1, 0
    FC1 tinyc_fc1_dsp_lh, 1, 1, 0
    FC1 tinyc_fc1_dsp_n_t, 0, 0, 1
    FC1 tinyc_fc1_dsp_l_t, 1, 0, 1
    FC1 tinyc_fc1_dsp_h_t, 0, 1, 1
    FC1 tinyc_fc1_dsp_lh_t, 1, 1, 1

#endif

/* host builds assemble this file empty: say its stack is not executable */
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
