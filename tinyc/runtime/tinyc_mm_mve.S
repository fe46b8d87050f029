/* Matrix micro-kernel for Cortex-M55 (Helium, MVE).
 *
 * Two rows of int8 activations against channel quads of int8 weights laid out in 16-byte
 * blocks (TINYC_WL_QUADS in tinyc_nn.h: per quad and block, 16 bytes of each of the four
 * channels). VMLADAVA multiplies 16 pairs and adds them into a 32-bit scalar, so a block
 * costs six loads and eight multiply-accumulates for 128 MACs. Its accumulators must be
 * even-numbered registers: r0, r2, ..., r12 and lr hold them, the odd ones the pointers.
 */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

    .syntax unified
    .thumb
    .text

/* void tinyc_mm2x4_mve(const int8_t *x, const int8_t *y, const int8_t *w, int32_t k,
 *                      int32_t quads, const int32_t *q, int32_t *acc);
 * For quad j: acc[8j + i] = q[12j + i] + x . w(channel 4j + i) and
 *             acc[8j + 4 + i] = q[12j + i] + y . w(channel 4j + i), i = 0..3.
 * k > 0; rows are read with a predicated last block, the weights are padded to 16.
 * Stack after the pushes: [sp] = quads left, [sp, #4] = x, [sp, #8] = y, [sp, #12] = k.
 */
    .global tinyc_mm2x4_mve
    .type tinyc_mm2x4_mve, %function
    .align 2
tinyc_mm2x4_mve:
    push    {r4, r5, r6, r7, r8, r9, r10, r11, lr}
    vpush   {d8-d11}
    ldr     r4, [sp, #68]           /* quads */
    ldr     r7, [sp, #72]           /* q */
    ldr     r9, [sp, #76]           /* acc */
    mov     r5, r2                  /* w */
    sub     sp, sp, #16
    str     r4, [sp]
    str     r0, [sp, #4]
    str     r1, [sp, #8]
    str     r3, [sp, #12]
.Lq_loop:
    ldrd    r0, r4, [r7]            /* biases of the quad */
    ldrd    r8, r12, [r7, #8]
    add     r7, r7, #48
    mov     r2, r0
    mov     r6, r4
    mov     r10, r8
    mov     lr, r12
    ldr     r1, [sp, #4]
    ldr     r3, [sp, #8]
    ldr     r11, [sp, #12]
    lsrs    r11, r11, #4            /* full blocks */
    beq     .Lq_tail
.Lq_block:
    vldrb.8 q0, [r1], #16
    vldrb.8 q1, [r3], #16
    vldrb.8 q2, [r5], #64
    vldrb.8 q3, [r5, #-48]
    vldrb.8 q4, [r5, #-32]
    vldrb.8 q5, [r5, #-16]
    vmladava.s8 r0, q0, q2
    vmladava.s8 r2, q1, q2
    vmladava.s8 r4, q0, q3
    vmladava.s8 r6, q1, q3
    vmladava.s8 r8, q0, q4
    vmladava.s8 r10, q1, q4
    vmladava.s8 r12, q0, q5
    vmladava.s8 lr, q1, q5
    subs    r11, r11, #1
    bne     .Lq_block
.Lq_tail:
    ldr     r11, [sp, #12]
    ands    r11, r11, #15
    beq     .Lq_store
    vctp.8  r11
    vpstt
    vldrbt.8 q0, [r1]
    vldrbt.8 q1, [r3]
    vldrb.8 q2, [r5], #64
    vldrb.8 q3, [r5, #-48]
    vldrb.8 q4, [r5, #-32]
    vldrb.8 q5, [r5, #-16]
    vmladava.s8 r0, q0, q2
    vmladava.s8 r2, q1, q2
    vmladava.s8 r4, q0, q3
    vmladava.s8 r6, q1, q3
    vmladava.s8 r8, q0, q4
    vmladava.s8 r10, q1, q4
    vmladava.s8 r12, q0, q5
    vmladava.s8 lr, q1, q5
.Lq_store:
    strd    r0, r4, [r9]
    strd    r8, r12, [r9, #8]
    strd    r2, r6, [r9, #16]
    strd    r10, lr, [r9, #24]
    add     r9, r9, #32
    ldr     r11, [sp]
    subs    r11, r11, #1
    str     r11, [sp]
    bne     .Lq_loop
    add     sp, sp, #16
    vpop    {d8-d11}
    pop     {r4, r5, r6, r7, r8, r9, r10, r11, pc}
    .size tinyc_mm2x4_mve, . - tinyc_mm2x4_mve

/* void tinyc_mmq2_mve(const int8_t *x, const int8_t *y, const int8_t *w, int32_t k,
 *                     int32_t out_c, const int32_t *q, const int32_t *rq,
 *                     int8_t *o0, int8_t *o1);
 * The blocks of tinyc_mm2x4_mve over every quad, each quad's eight sums then stored and
 * loaded back as two vectors, requantized (right shifts: VQRDMULH, round half away from zero, VRSHL, the
 * zero point, the activation bounds; rq = {zp, lo, hi}) and stored to o0 and o1 (the last
 * quad predicated when out_c % 4 != 0). r11 holds the zero point throughout, q6/q7 the
 * bounds. Frame: [sp] x, [sp+4] y, [sp+8] k, [sp+12] channels left, [sp+16] o0,
 * [sp+20] o1, [sp+24] the quad's sums; stack arguments from [sp+156].
 */
    .global tinyc_mmq2_mve
    .type tinyc_mmq2_mve, %function
    .align 2
tinyc_mmq2_mve:
    push    {r4, r5, r6, r7, r8, r9, r10, r11, lr}
    vpush   {d8-d15}
    sub     sp, sp, #56
    strd    r0, r1, [sp]
    str     r3, [sp, #8]
    mov     r5, r2
    ldr     r7, [sp, #160]          /* records */
    ldr     r11, [sp, #156]
    str     r11, [sp, #12]
    ldrd    r0, r1, [sp, #168]      /* o0, o1 */
    strd    r0, r1, [sp, #16]
    ldr     r0, [sp, #164]          /* rq */
    ldr     r11, [r0]
    ldr     r1, [r0, #4]
    vdup.32 q6, r1
    ldr     r1, [r0, #8]
    vdup.32 q7, r1
.Lm_quad:
    ldrd    r1, r3, [sp]
    ldrd    r0, r4, [r7]            /* biases */
    ldrd    r8, r12, [r7, #8]
    mov     r2, r0
    mov     r6, r4
    mov     r10, r8
    mov     lr, r12
    ldr     r9, [sp, #8]
    lsrs    r9, r9, #4
    beq     .Lm_tail
.Lm_block:
    vldrb.8 q0, [r1], #16
    vldrb.8 q1, [r3], #16
    vldrb.8 q2, [r5], #64
    vldrb.8 q3, [r5, #-48]
    vldrb.8 q4, [r5, #-32]
    vldrb.8 q5, [r5, #-16]
    vmladava.s8 r0, q0, q2
    vmladava.s8 r2, q1, q2
    vmladava.s8 r4, q0, q3
    vmladava.s8 r6, q1, q3
    vmladava.s8 r8, q0, q4
    vmladava.s8 r10, q1, q4
    vmladava.s8 r12, q0, q5
    vmladava.s8 lr, q1, q5
    subs    r9, r9, #1
    bne     .Lm_block
.Lm_tail:
    ldr     r9, [sp, #8]
    ands    r9, r9, #15
    beq     .Lm_rq
    vctp.8  r9
    vpstt
    vldrbt.8 q0, [r1]
    vldrbt.8 q1, [r3]
    vldrb.8 q2, [r5], #64
    vldrb.8 q3, [r5, #-48]
    vldrb.8 q4, [r5, #-32]
    vldrb.8 q5, [r5, #-16]
    vmladava.s8 r0, q0, q2
    vmladava.s8 r2, q1, q2
    vmladava.s8 r4, q0, q3
    vmladava.s8 r6, q1, q3
    vmladava.s8 r8, q0, q4
    vmladava.s8 r10, q1, q4
    vmladava.s8 r12, q0, q5
    vmladava.s8 lr, q1, q5
.Lm_rq:
    strd    r0, r4, [sp, #24]       /* row x: channels 0..3, then row y */
    strd    r8, r12, [sp, #32]
    strd    r2, r6, [sp, #40]
    strd    r10, lr, [sp, #48]
    vldrw.u32 q0, [sp, #24]
    vldrw.u32 q1, [sp, #40]
    vldrw.u32 q2, [r7, #16]         /* multipliers */
    vldrw.u32 q3, [r7, #32]         /* shifts (negative: right) */
    add     r7, r7, #48
    vqrdmulh.s32 q0, q0, q2
    vqrdmulh.s32 q1, q1, q2
    vshr.s32 q4, q0, #31
    vshr.s32 q5, q1, #31
    vadd.i32 q0, q0, q4
    vadd.i32 q1, q1, q5
    vrshl.s32 q0, q0, q3
    vrshl.s32 q1, q1, q3
    vadd.i32 q0, q0, r11
    vadd.i32 q1, q1, r11
    vmax.s32 q0, q0, q6
    vmax.s32 q1, q1, q6
    vmin.s32 q0, q0, q7
    vmin.s32 q1, q1, q7
    ldrd    r1, r3, [sp, #16]
    ldr     r9, [sp, #12]
    cmp     r9, #4
    blt     .Lm_part
    vstrb.32 q0, [r1], #4
    vstrb.32 q1, [r3], #4
    strd    r1, r3, [sp, #16]
    subs    r9, r9, #4
    str     r9, [sp, #12]
    bne     .Lm_quad
    b       .Lm_done
.Lm_part:
    vctp.32 r9
    vpstt
    vstrbt.32 q0, [r1]
    vstrbt.32 q1, [r3]
.Lm_done:
    add     sp, sp, #56
    vpop    {d8-d15}
    pop     {r4, r5, r6, r7, r8, r9, r10, r11, pc}
    .size tinyc_mmq2_mve, . - tinyc_mmq2_mve

#endif

/* host builds assemble this file empty: say its stack is not executable */
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
