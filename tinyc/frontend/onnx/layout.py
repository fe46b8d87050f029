"""Axis permutations between an ONNX tensor and the IR tensor that holds it.

A value's IR tensor is ``onnx_array.transpose(perm)``: IR axis ``i`` is ONNX axis ``perm[i]``.
Channel-first ONNX tensors (N, C, spatial...) live channel-last in the IR (N, spatial..., C).
"""

from __future__ import annotations

from collections.abc import Sequence

Perm = tuple[int, ...]


def identity(rank: int) -> Perm:
    return tuple(range(rank))


def channel_last(rank: int) -> Perm:
    """(0, 2, ..., rank-1, 1): NCHW -> NHWC, NCW -> NWC."""
    if rank < 3:
        return identity(rank)
    return (0, *range(2, rank), 1)


def inverse(perm: Sequence[int]) -> Perm:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def ir_axis(perm: Sequence[int], onnx_axis: int) -> int:
    """Where ONNX axis ``onnx_axis`` sits in the IR tensor."""
    return perm.index(onnx_axis)


def between(src: Sequence[int], dst: Sequence[int]) -> Perm:
    """The transpose that turns an IR tensor in layout ``src`` into layout ``dst``."""
    inv = inverse(src)
    return tuple(inv[d] for d in dst)


def moves_data(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """False when transposing ``shape`` by ``perm`` only moves size-1 axes (a reshape)."""
    kept = [p for p in perm if shape[p] != 1]
    return kept != sorted(kept)


def drop_axes(perm: Sequence[int], axes: Sequence[int]) -> Perm:
    """The layout left after removing ONNX ``axes`` (and their IR positions) from a value."""
    gone = set(axes)
    kept = [p for p in perm if p not in gone]
    return tuple(sorted(kept).index(p) for p in kept)


def insert_axes(perm: Sequence[int], axes: Sequence[int]) -> Perm:
    """The layout after inserting new size-1 ONNX ``axes`` (output positions).

    The IR keeps its axis order and gets the new axes appended at the end, so the IR
    change is a reshape.
    """
    rank = len(perm) + len(axes)
    new = sorted(a % rank for a in axes)
    old_positions = [a for a in range(rank) if a not in new]
    return tuple(old_positions[p] for p in perm) + tuple(new)


def permute(shape: Sequence[int], perm: Sequence[int]) -> tuple[int, ...]:
    return tuple(shape[p] for p in perm)
