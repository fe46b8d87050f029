"""Expand and Tile (constant shape / repeats) as BROADCAST_TO between reshapes, and
DepthToSpace / SpaceToDepth in NHWC. All move values unchanged, so they serve float and
int8 tensors alike."""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.frontend.onnx import layout as L
from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.registry import onnx_op

NHWC = L.channel_last(4)


def _ints(b: Builder, name: str, what: str) -> list[int]:
    data = np.asarray(b.const(name, what))
    if data.dtype.kind not in "iu":
        raise b.unsupported(f"{what} of type {data.dtype}")
    return [int(i) for i in data.reshape(-1)]


def _emit_like(b: Builder, kind: str, src: str, attrs: dict, out: str, suffix: str) -> str:
    t = b.g.tensors[src]
    return b.emit(kind, [src], attrs, out, t.dtype, suffix, t.quant)


@onnx_op("Expand")
def expand(b: Builder, node: onnx.NodeProto) -> None:
    x = node.input[0]
    if b.is_const(x):
        raise b.unsupported("a constant input (nothing to compute)")
    target = _ints(b, node.input[1], "shape")
    shape = b.shape(x)
    try:
        out_shape = tuple(np.broadcast_shapes(shape, tuple(target)))
    except ValueError:
        raise b.unsupported(f"shape {target} does not broadcast with {list(shape)}") from None
    if out_shape == shape:
        b.values[node.output[0]] = b.value(x)
        return
    v = b.value(b.with_rank(x, len(out_shape)))
    ir_shape = L.permute(out_shape, v.perm)
    out = _emit_like(b, "BROADCAST_TO", v.ir, {"shape": ir_shape}, node.output[0], "broadcast")
    b.bind(node.output[0], out, v.perm)


@onnx_op("Tile")
def tile(b: Builder, node: onnx.NodeProto) -> None:
    """Each repeated axis d gets a new axis r in front of it (a reshape), the input is
    broadcast along the new axes, and (r, d) merge into r * d: row-major order makes that
    element j of repetition k land at k * d + j, which is Tile."""
    x = node.input[0]
    if b.is_const(x):
        raise b.unsupported("a constant input (nothing to compute)")
    repeats = _ints(b, node.input[1], "repeats")
    v = b.value(x)
    if len(repeats) != len(v.perm) or min(repeats) < 1:
        raise b.unsupported(f"repeats {repeats} for rank {len(v.perm)}")
    if all(r == 1 for r in repeats):
        b.values[node.output[0]] = v
        return
    src = b.g.tensors[v.ir]
    reps = [repeats[p] for p in v.perm]  # in IR axis order
    split, wide, merged = [], [], []
    for r, d in zip(reps, src.shape, strict=True):
        if r > 1:
            split += [1, d]
            wide += [r, d]
        else:
            split.append(d)
            wide.append(d)
        merged.append(r * d)
    y = _emit_like(b, "RESHAPE", v.ir, {"shape": tuple(split)}, f"{node.output[0]}#split", "split")
    y = _emit_like(b, "BROADCAST_TO", y, {"shape": tuple(wide)}, f"{node.output[0]}#wide", "tile")
    out = _emit_like(b, "RESHAPE", y, {"shape": tuple(merged)}, node.output[0], "merge")
    b.bind(node.output[0], out, v.perm)


def _chain(b: Builder, node: onnx.NodeProto, src: str, steps: list[tuple[str, dict]]) -> str:
    out = src
    for i, (kind, attrs) in enumerate(steps):
        last = i == len(steps) - 1
        name = node.output[0] if last else f"{node.output[0]}#{kind.lower()}{i}"
        out = _emit_like(b, kind, out, attrs, name, kind.lower())
    return out


@onnx_op("DepthToSpace")
def depth_to_space(b: Builder, node: onnx.NodeProto) -> None:
    """DCR (ONNX's default) is TFLite's DEPTH_TO_SPACE order; CRD is a reshape - transpose
    - reshape in NHWC."""
    a = b.attrs(node)
    bs = int(a["blocksize"])
    mode = a.get("mode", "DCR")
    shape = b.shape(node.input[0])
    if len(shape) != 4 or shape[1] % (bs * bs):
        raise b.unsupported(f"input {list(shape)} for block size {bs}")
    n, c, h, w = shape
    co = c // (bs * bs)
    x = b.as_layout(node.input[0], NHWC)
    if mode == "DCR":
        steps = [("DEPTH_TO_SPACE", {"block_size": bs})]
    elif mode == "CRD":  # input channel k * bs * bs + i * bs + j
        steps = [
            ("RESHAPE", {"shape": (n, h, w, co, bs, bs)}),
            ("TRANSPOSE", {"perm": (0, 1, 4, 2, 5, 3)}),
            ("RESHAPE", {"shape": (n, h * bs, w * bs, co)}),
        ]
    else:
        raise b.unsupported(f"mode {mode!r}")
    b.bind(node.output[0], _chain(b, node, x, steps), NHWC)


@onnx_op("SpaceToDepth")
def space_to_depth(b: Builder, node: onnx.NodeProto) -> None:
    bs = int(b.attrs(node)["blocksize"])
    shape = b.shape(node.input[0])
    if len(shape) != 4 or shape[2] % bs or shape[3] % bs:
        raise b.unsupported(f"input {list(shape)} for block size {bs}")
    x = b.as_layout(node.input[0], NHWC)
    steps = [("SPACE_TO_DEPTH", {"block_size": bs})]
    b.bind(node.output[0], _chain(b, node, x, steps), NHWC)
