"""The target's view of the matrix kernels of tinyc_nn.h (CONV_2D, FULLY_CONNECTED): how
weights and requantization constants are laid out and how much scratch a layer needs.

Every rule here mirrors the C in tinyc/runtime/tinyc_nn.h (see its "matrix core" comment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.ir.ops.conv import Requant

TARGETS = ("plain", "dsp", "mve")


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


@dataclass(frozen=True)
class MatrixLayout:
    """Weight layout of one target: channel pairs x 4-byte groups (Cortex-M0+/M4/M7/M33)
    or channel quads x 16-byte blocks (Cortex-M55 with Helium)."""

    name: str
    code: str  # the C constant passed as the kernels' `wl` argument
    group: int  # channels interleaved together
    chunk: int  # bytes of one channel per interleaved chunk
    block_rows: tuple[int, ...]  # pixels a conv kernel gathers before writing, by core
    unsigned: bool = False  # weights stored as w + 128 (TINYC_WL_UPAIRS)

    @property
    def quads(self) -> bool:
        return self.group == 4

    def k_padded(self, k: int) -> int:
        return _round_up(k, self.chunk)

    def pack_weights(self, w2d: np.ndarray) -> tuple[np.ndarray, str]:
        """[out_c, k] int8 -> the array the kernels read and its C type."""
        out_c, k = w2d.shape
        kp, ocp = self.k_padded(k), _round_up(out_c, self.group)
        padded = np.zeros((ocp, kp), np.int8)
        padded[:out_c, :k] = w2d
        inter = padded.reshape(ocp // self.group, self.group, kp // self.chunk, self.chunk)
        flat = np.ascontiguousarray(inter.transpose(0, 2, 1, 3)).reshape(-1)
        if self.unsigned:
            flat = flat ^ np.int8(-128)  # w + 128 as a byte; padding becomes 128 too
        if self.quads:
            return flat, "int8_t"
        return flat.view("<u4").astype(np.uint32), "uint32_t"

    def kernel_bias(self, w2d: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """The bias the kernels add: for unsigned weights, with -128 * sum(w) folded in
        (see TINYC_WL_UPAIRS), kept modulo 2^32 like the kernels' sums."""
        if not self.unsigned:
            return bias
        folded = bias.astype(np.int64) - 128 * w2d.astype(np.int64).sum(axis=1)
        return ((folded + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)

    def records(self, rq: Requant, bias: np.ndarray) -> tuple[np.ndarray, int]:
        """Per channel group {biases, multipliers, shifts} and the right_only flag: set when
        every shift is a right shift of at least one bit (pair layouts then store the
        amount; quad layouts keep TFLite's negative shift for Helium's VRSHL)."""
        right_only = int(bool(np.all(rq.shift <= -1)))
        shift = -rq.shift if right_only and not self.quads else rq.shift
        n = len(bias)
        padded = _round_up(n, self.group)
        recs = np.zeros((padded, 3), np.int64)
        recs[:, 2] = (-1 if self.quads else 1) if right_only else 0
        recs[:n, 0], recs[:n, 1], recs[:n, 2] = bias, rq.multiplier, shift
        recs = recs.reshape(padded // self.group, self.group, 3).transpose(0, 2, 1)
        return np.ascontiguousarray(recs).astype(np.int32), right_only

    def conv_scratch(self, k: int, direct: bool) -> int:
        if self.quads:
            return 0 if direct else 2 * k
        k4 = self.k_padded(k)
        if self.unsigned:  # two int8 rows (cores without DSP) + a gather
            return 2 * k4 + (0 if direct else k4)
        # up to three rows expanded to int16 (DSP cores; two int8 rows elsewhere) + a gather
        return 3 * k4 * 2 + (0 if direct else k4)

    def fc_scratch(self, k: int, rows: int) -> int:
        if self.quads:
            return 0
        k4 = self.k_padded(k)
        gather = k4 if k != k4 else 0
        if self.unsigned:
            return (1 if rows == 1 else 2) * k4 + gather
        return (1 if rows == 1 else 3) * k4 * 2 + gather

    def conv_direct(self, kernel: tuple[int, int], pads: tuple[int, ...], in_c: int) -> bool:
        """1x1 unpadded kernels read input pixels in place (pairs: in_c % 4 == 0)."""
        return (
            tuple(kernel) == (1, 1)
            and tuple(pads) == (0, 0, 0, 0)
            and (self.quads or in_c % 4 == 0)
        )


PAIRS = MatrixLayout("pairs", "TINYC_WL_PAIRS", 2, 4, (2, 3))
#: the pair layout for cores without DSP (Cortex-M0+): unsigned operands, see tinyc_nn.h
UPAIRS = MatrixLayout("upairs", "TINYC_WL_UPAIRS", 2, 4, (2,), unsigned=True)
QUADS = MatrixLayout("quads", "TINYC_WL_QUADS", 4, 16, (2,))
#: per-channel {bias, multiplier, shift} records (the depthwise kernels)
CHANNELS = MatrixLayout("channels", "", 1, 1, ())


def layout_for(target: str) -> MatrixLayout:
    return {"mve": QUADS, "plain": UPAIRS}.get(target, PAIRS)
