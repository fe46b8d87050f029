"""Helium (MVE) assembly for depthwise rows, generated per layer geometry.

With quad-major ring rows (see ``tinyc_dwq_row_t`` in tinyc_nn.h) every tap of a block of
four output pixels and one channel quad is an immediate offset from one pointer per kernel
row, and every weight an immediate offset from the quad's weight pointer. Written for the
geometry at hand, a tap costs one weight load and, per pixel, a widening load, a multiply
and an add: 13 instructions for 16 multiply-accumulates, nothing for addresses or loop
control. gcc cannot get there from intrinsics (it hoists the nine weight vectors out of
the pixel loop and spills them), so tinyc writes the kernel itself.

Register use: r0..r(k_h-1) the kernel rows, then the weight and output pointers (widening
loads and narrowing stores take low registers); r8 the quad's records, r9 the output zero
point, r10 the channel count (the output pixel stride), r11/r12 the activation bounds, lr
the block count. q0.. accumulate the block's pixels (four, up to six in a row's last
block); the q registers left hold the tap's weights and temporaries, then the
requantization constants.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the kernels need k_h + 2 low registers
MAX_KH = 6
#: VLDRB.S32 immediate offsets reach 0..127
MAX_OFFSET = 124
#: pixels per block: four in the loop; a row's last block may take up to six (six
#: accumulators, the weight and one temporary fill the eight q registers)
PIXELS = 4
MAX_PIXELS = 6
#: bytes pushed before the stack arguments: r4-r11, lr, then d8-d15
_PUSHED = 9 * 4 + 64


@dataclass(frozen=True)
class DwqGeometry:
    """What a generated row kernel is specialized for."""

    k_h: int
    k_w: int
    s_w: int
    dil_w: int
    out_w: int
    clamp_lo: bool  # the activation's lower bound is above -128
    clamp_hi: bool  # its upper bound is below 127

    @property
    def name(self) -> str:
        clamp = ("l" if self.clamp_lo else "") + ("h" if self.clamp_hi else "")
        return f"tinyc_dwq_{self.k_h}x{self.k_w}_s{self.s_w}_d{self.dil_w}_w{self.out_w}" + (
            f"_{clamp}" if clamp else ""
        )

    @property
    def taps(self) -> int:
        return self.k_h * self.k_w


def blocks(out_w: int) -> tuple[int, int]:
    """(blocks of four pixels, pixels of the last block) for a row of ``out_w``: the row's
    tail joins the last block of four when that keeps it within six pixels."""
    full, rest = divmod(out_w, PIXELS)
    if full and rest and rest + PIXELS <= MAX_PIXELS:
        return full - 1, rest + PIXELS
    return full, rest


def supported(geo: DwqGeometry, channels: int) -> bool:
    """Whether the generated kernel covers this layer (else tinyc's C kernels run it)."""
    widest = max(min(geo.out_w, PIXELS), blocks(geo.out_w)[1])
    far_tap = 4 * ((widest - 1) * geo.s_w + (geo.k_w - 1) * geo.dil_w)
    return (
        channels % 4 == 0
        and 1 <= geo.k_h <= MAX_KH
        and 4 * (geo.taps - 1) <= MAX_OFFSET
        and far_tap <= MAX_OFFSET
        and geo.out_w >= 1
    )


def row_kernel(geo: DwqGeometry) -> str:
    """The assembly of one ``tinyc_dwq_row_t`` for ``geo`` (channels a multiple of 4)."""
    rows = [f"r{i}" for i in range(geo.k_h)]
    rw, ro = f"r{geo.k_h}", f"r{geo.k_h + 1}"
    locals_ = 4 * geo.k_h  # row bases, then quads left, quad offset, segment, output
    ql, qo, seg, oc = locals_, locals_ + 4, locals_ + 8, locals_ + 12
    frame = (locals_ + 16 + 7) // 8 * 8
    arg = frame + _PUSHED  # first stack argument
    label = f".L{geo.name}"
    loops, rest = blocks(geo.out_w)

    out = [
        f"/* {geo.name}: depthwise {geo.k_h}x{geo.k_w}, stride {geo.s_w}, dilation"
        f" {geo.dil_w}, {geo.out_w} output pixels per row */",
        f"    .global {geo.name}",
        f"    .type {geo.name}, %function",
        "    .align 2",
        f"{geo.name}:",
        "    push    {r4, r5, r6, r7, r8, r9, r10, r11, lr}",
        "    vpush   {d8-d15}",
        f"    sub     sp, sp, #{frame}",
    ]
    for ky in range(geo.k_h):
        out += [f"    ldr     r12, [r0, #{4 * ky}]", f"    str     r12, [sp, #{4 * ky}]"]
    out += [
        "    mov     r10, r2",
        "    lsrs    r2, r2, #2",
        f"    str     r2, [sp, #{ql}]",
        "    movs    r2, #0",
        f"    str     r2, [sp, #{qo}]",
        "    lsls    r3, r3, #2",
        f"    str     r3, [sp, #{seg}]",
        f"    ldr     {rw}, [sp, #{arg}]",
        f"    ldr     r8, [sp, #{arg + 4}]",
        f"    ldr     r9, [sp, #{arg + 8}]",
        f"    ldr     r12, [sp, #{arg + 12}]",
        f"    ldr     r11, [sp, #{arg + 16}]",
        f"    ldr     r2, [sp, #{arg + 20}]",
        f"    str     r2, [sp, #{oc}]",
        f"{label}_quad:",
        f"    ldr     {ro}, [sp, #{qo}]",
    ]
    for ky, r in enumerate(rows):
        out += [f"    ldr     {r}, [sp, #{4 * ky}]", f"    add     {r}, {r}, {ro}"]
    out.append(f"    ldr     {ro}, [sp, #{oc}]")
    if loops:
        out += [f"    movw    lr, #{loops}", "    dls     lr, lr", f"{label}_block:"]
        out += _block(geo, PIXELS, rows, rw, ro)
        out += [f"    add     {r}, {r}, #{4 * PIXELS * geo.s_w}" for r in rows]
        out.append(f"    le      lr, {label}_block")
    if rest:
        out += _block(geo, rest, rows, rw, ro)
    out += [
        f"    ldr     lr, [sp, #{oc}]",
        "    adds    lr, lr, #4",
        f"    str     lr, [sp, #{oc}]",
        f"    ldr     lr, [sp, #{qo}]",
        f"    ldr     {ro}, [sp, #{seg}]",
        f"    add     lr, lr, {ro}",
        f"    str     lr, [sp, #{qo}]",
        f"    add     {rw}, {rw}, #{4 * geo.taps}",
        "    add     r8, r8, #48",
        f"    ldr     lr, [sp, #{ql}]",
        "    subs    lr, lr, #1",
        f"    str     lr, [sp, #{ql}]",
        f"    bne     {label}_quad",
        f"    add     sp, sp, #{frame}",
        "    vpop    {d8-d15}",
        "    pop     {r4, r5, r6, r7, r8, r9, r10, r11, pc}",
        f"    .size {geo.name}, .-{geo.name}",
        "",
    ]
    return "\n".join(out)


def _block(geo: DwqGeometry, pixels: int, rows: list[str], rw: str, ro: str) -> list[str]:
    """``pixels`` output pixels of one channel quad: taps, requantization, stores."""
    acc = [f"q{p}" for p in range(pixels)]
    out = ["    vldrw.u32 q0, [r8]"] + [f"    vmov    {a}, q0" for a in acc[1:]]
    free = [f"q{i}" for i in range(pixels, 8)]
    wv, temps = free[0], free[1:]
    pair = 2 if len(temps) >= 2 else 1
    for ky, r in enumerate(rows):
        for kx in range(geo.k_w):
            out.append(f"    vldrb.s32 {wv}, [{rw}, #{4 * (ky * geo.k_w + kx)}]")
            # pixels in pairs: both loads, both multiplies, both adds (no back-to-back use)
            for first in range(0, pixels, pair):
                group = list(range(first, min(first + pair, pixels)))
                for j, p in enumerate(group):
                    off = 4 * (p * geo.s_w + kx * geo.dil_w)
                    out.append(f"    vldrb.s32 {temps[j]}, [{r}, #{off}]")
                for j, _ in enumerate(group):
                    out.append(f"    vmul.i32 {temps[j]}, {temps[j]}, {wv}")
                for j, p in enumerate(group):
                    out.append(f"    vadd.i32 {acc[p]}, {acc[p]}, {temps[j]}")
    # requantize with the free registers: multipliers, a temporary and, while registers
    # last, the shifts and the lower bound (else they are loaded again for each pixel)
    mult, tmp = free[0], free[-1]
    shift = free[1] if len(free) > 2 else tmp
    lo_reg = free[2] if len(free) > 3 else tmp
    out.append(f"    vldrw.u32 {mult}, [r8, #16]")
    if shift != tmp:
        out.append(f"    vldrw.u32 {shift}, [r8, #32]")
    if geo.clamp_lo and lo_reg != tmp:
        out.append(f"    vdup.32 {lo_reg}, r12")
    for a in acc:
        out += [
            f"    vqrdmulh.s32 {a}, {a}, {mult}",
            f"    vshr.s32 {tmp}, {a}, #31",
            f"    vadd.i32 {a}, {a}, {tmp}",
        ]
        if shift == tmp:
            out.append(f"    vldrw.u32 {tmp}, [r8, #32]")
        out += [f"    vrshl.s32 {a}, {a}, {shift}", f"    vadd.i32 {a}, {a}, r9"]
        if geo.clamp_lo:
            if lo_reg == tmp:
                out.append(f"    vdup.32 {tmp}, r12")
            out.append(f"    vmax.s32 {a}, {a}, {lo_reg}")
        if geo.clamp_hi:
            out += [f"    vdup.32 {tmp}, r11", f"    vmin.s32 {a}, {a}, {tmp}"]
        if not (geo.clamp_lo and geo.clamp_hi):
            # saturate to int8 through int16: byte 0 of each lane is the clamped value
            out += [f"    vqmovnb.s32 {a}, {a}", f"    vqmovnb.s16 {a}, {a}"]
        out += [f"    vstrb.32 {a}, [{ro}]", f"    add     {ro}, {ro}, r10"]
    return out


def assembly_file(kernels: list[str]) -> str:
    """model/model_mve.S: the generated kernels, assembled only for Helium cores."""
    return "\n".join(
        [
            "/* Helium kernels tinyc generated for this model's layer geometries.",
            " * Generated by tinyc. Do not edit. */",
            "#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)",
            "",
            "    .syntax unified",
            "    .thumb",
            "    .text",
            "",
            *kernels,
            "#endif",
            "",
        ]
    )
