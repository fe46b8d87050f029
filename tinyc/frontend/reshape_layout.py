"""Where a reshape of a value held in some axis order (a layout) can happen without moving data,
and, when it cannot, the least data movement that makes it possible.

Both the ONNX and the PyTorch frontends hold a value ``v`` as the IR tensor
``v.transpose(perm)`` (IR axis ``i`` is the model's axis ``perm[i]``), channel-last for
images. ``v.reshape(dst)`` only merges or splits groups of consecutive axes (size-1 axes
aside); when the IR tensor holds every group whole and in the model's order, the groups can
be reshaped where they are, whatever order the groups are in. Otherwise one transpose brings
each group whole and in order — keeping the groups in the order the IR tensor already has
them (so a channel-last value stays channel-last), or in the order a reader prefers.

ShuffleNet's channel shuffle, ``x.view(n, g, c // g, h, w).transpose(1, 2).view(n, c, h, w)``
on a channel-last ``x``, is the case in point: the first view splits the channel axis in place,
the transpose relabels, and the second view needs one transpose of the two channel factors,
after which the result is channel-last again.
"""

from __future__ import annotations

from collections.abc import Sequence

Perm = tuple[int, ...]
Group = tuple[list[int], list[int]]


def axis_groups(src: Sequence[int], dst: Sequence[int]) -> list[Group] | None:
    """The axes (size > 1) of a reshape from ``src`` to ``dst`` in groups that merge or
    split into each other: (source axes, target axes) with equal products."""
    ins = [a for a, d in enumerate(src) if d != 1]
    outs = [a for a, d in enumerate(dst) if d != 1]
    groups, i, j = [], 0, 0
    while i < len(ins) and j < len(outs):
        gi, gj = [ins[i]], [outs[j]]
        pi, pj = src[ins[i]], dst[outs[j]]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj and i < len(ins):
                gi.append(ins[i])
                pi, i = pi * src[ins[i]], i + 1
            elif pj < pi and j < len(outs):
                gj.append(outs[j])
                pj, j = pj * dst[outs[j]], j + 1
            else:
                return None
        groups.append((gi, gj))
    return groups if i == len(ins) and j == len(outs) else None


def with_unit_axes(order: Sequence[int], shape: Sequence[int]) -> Perm:
    """A full layout from the order of the axes of size > 1: each size-1 axis goes right after
    the axis before it (first when it is axis 0), so an in-order ``order`` gives the identity."""
    out = list(order)
    for a, d in enumerate(shape):
        if d == 1:
            out.insert(0 if a == 0 else out.index(a - 1) + 1, a)
    return tuple(out)


def _in_order(order: Sequence[int], axes: list[int]) -> bool:
    """``axes`` sit consecutively and in increasing order in ``order``."""
    k = order.index(axes[0])
    return list(order[k : k + len(axes)]) == axes


def reshape_layout(
    src: Sequence[int], perm: Sequence[int], dst: Sequence[int], prefer: Sequence[int] | None = None
) -> tuple[Perm, Perm] | None:
    """How to hold ``v.reshape(dst)`` for ``v`` of shape ``src`` held in layout ``perm``:
    (the layout to bring ``v`` to first, the layout of the result). The first is ``perm``
    itself when no data needs to move; otherwise the groups keep their current order, or the
    order of ``prefer`` (a layout of the result) when that is reachable with one transpose.
    None when ``dst`` is not a reshape of ``src``."""
    groups = axis_groups(src, dst)
    if groups is None:
        return None
    order = [a for a in perm if src[a] != 1]
    if all(_in_order(order, g[0]) for g in groups):
        groups.sort(key=lambda g: order.index(g[0][0]))
        return tuple(perm), with_unit_axes([a for g in groups for a in g[1]], dst)
    if prefer is not None and sorted(prefer) == list(range(len(dst))):
        wanted = [a for a in prefer if dst[a] != 1]
        if all(_in_order(wanted, g[1]) for g in groups):
            groups.sort(key=lambda g: wanted.index(g[1][0]))
            return with_unit_axes([a for g in groups for a in g[0]], src), tuple(prefer)
    groups.sort(key=lambda g: min(order.index(a) for a in g[0]))
    return (
        with_unit_axes([a for g in groups for a in g[0]], src),
        with_unit_axes([a for g in groups for a in g[1]], dst),
    )
