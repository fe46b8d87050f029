"""Make a Graph expressible in TFLite: SAME/VALID windows, the file's own I/O layout, and
recurrent layers in the form TFLM runs (tinyc.backends.tflm.recurrent).

The IR keeps explicit window pads; TFLite only knows SAME and VALID. Pads that are
neither become a PAD (or PADV2) node in front of a VALID window. The writer works on
the lowered copy; the caller's graph is never changed.
"""

from __future__ import annotations

import numpy as np

from tinyc.backends.tflm.recurrent import lower_recurrent, prepare_lstm
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.window import same_padding
from tinyc.ir.tensor import Tensor

WINDOW_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D")


def window_geometry(node: Node, g: Graph) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, dilation, pads) of a window node, as its op definition sees it."""
    op = get_op(node.op)
    if node.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return op.geometry(node)  # type: ignore[attr-defined]
    return op.geometry(node, g)  # type: ignore[attr-defined]


def effective_pads(
    in_hw: tuple[int, ...], out_hw: tuple[int, ...], k, s, d, pads
) -> tuple[int, int, int, int]:
    """The pads a window actually reads: trailing pad rows/columns no window touches are
    dropped, so pads that differ only there compare equal."""
    res = []
    for axis in range(2):
        before = pads[2 * axis]
        need = (out_hw[axis] - 1) * s[axis] + (k[axis] - 1) * d[axis] + 1
        res += [before, max(0, need - in_hw[axis] - before)]
    return tuple(res)  # type: ignore[return-value]


def padding_kind(node: Node, g: Graph) -> str | None:
    """ "SAME" or "VALID" when the node's pads are exactly one of them, else None."""
    k, s, d, pads = window_geometry(node, g)
    x, y = g.inp(node, 0), g.out(node)
    assert x is not None
    in_hw, out_hw = x.shape[1:3], y.shape[1:3]
    eff = effective_pads(in_hw, out_hw, k, s, d, pads)
    same = (
        *same_padding(in_hw[0], k[0], s[0], d[0]),
        *same_padding(in_hw[1], k[1], s[1], d[1]),
    )
    if eff == same and out_hw == tuple(-(-n // st) for n, st in zip(in_hw, s, strict=True)):
        return "SAME"
    if eff == (0, 0, 0, 0):
        return "VALID"
    return None


def _pad_value(node: Node, x: Tensor) -> int | float | None:
    """What the window implicitly pads with; None = the input's zero point (PAD's default)."""
    if node.op == "MAX_POOL_2D":
        return -np.inf if x.dtype == "float32" else int(np.iinfo(x.dtype).min)
    return None


def _explicit_pad(node: Node, g: Graph) -> Node:
    """Insert a PAD node feeding ``node`` and make ``node`` VALID."""
    if node.op == "AVERAGE_POOL_2D":
        raise UnsupportedError(
            f"node {node.name!r} (AVERAGE_POOL_2D): pads {list(attr(node, 'pads'))} are neither "
            "SAME nor VALID; TFLite cannot express them (padding is not averaged)"
        )
    x = g.inp(node, 0)
    assert x is not None
    _, _, _, pads = window_geometry(node, g)
    top, bottom, left, right = pads
    shape = (x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right, x.shape[3])
    padded = g.add_tensor(Tensor(g.unique_name(f"{x.name}/pad"), shape, x.dtype, None, x.quant))
    pad = Node(
        "PAD",
        g.unique_name(f"{node.name}/pad"),
        [x.name],
        [padded.name],
        {"paddings": ((0, 0), (top, bottom), (left, right), (0, 0)), "value": _pad_value(node, x)},
    )
    node.inputs = [padded.name, *node.inputs[1:]]
    node.attrs["pads"] = (0, 0, 0, 0)
    return pad


def _boundary_transposes(g: Graph) -> tuple[list[Node], list[Node]]:
    """TRANSPOSE nodes that give the file the model's own I/O layout (e.g. NCHW)."""
    head: list[Node] = []
    tail: list[Node] = []
    for name, perm in list(g.external_perm.items()):
        if tuple(perm) == tuple(range(len(perm))):
            continue
        t = g.tensors[name]
        ext_shape = tuple(t.shape[p] for p in perm)
        inner = g.unique_name(f"{name}/internal")
        g.tensors[inner] = Tensor(inner, t.shape, t.dtype, None, t.quant, dict(t.meta))
        g.tensors[name] = Tensor(name, ext_shape, t.dtype, None, t.quant, dict(t.meta))
        for n in g.nodes:
            n.inputs = [inner if i == name else i for i in n.inputs]
            n.outputs = [inner if o == name else o for o in n.outputs]
        if name in g.inputs:
            inv = tuple(int(i) for i in np.argsort(perm))
            head.append(
                Node("TRANSPOSE", g.unique_name(f"{name}/to_nhwc"), [name], [inner], {"perm": inv})
            )
        else:
            tail.append(
                Node(
                    "TRANSPOSE",
                    g.unique_name(f"{name}/to_file_layout"),
                    [inner],
                    [name],
                    {"perm": tuple(int(p) for p in perm)},
                )
            )
    g.external_perm = {}
    return head, tail


def require_tflite_ops(g: Graph) -> None:
    """Refuse tinyc's own ops that no TFLite operator computes, naming the C backend.

    KRONECKER_FC: expanding W = sum_r A_r (x) B_r back into a dense FULLY_CONNECTED would
    silently undo the compression (and its int8 scheme is tinyc's), so neither int8 nor
    float graphs are lowered: an error."""
    for node in g.nodes:
        if node.op == "KRONECKER_FC":
            raise UnsupportedError(
                f"node {node.name!r} is a Kronecker-factored fully-connected layer "
                "(KRONECKER_FC, from --kronecker or tinyc.torch.KroneckerLinear), which TFLite "
                "Micro has no operator for: compile it with the C backend (--backend cmsis)"
            )


def lower_for_tflite(g: Graph, file_layout: bool = True, notes: list[str] | None = None) -> Graph:
    """A copy of ``g`` whose every node maps onto one TFLite operator.

    With ``file_layout`` the graph I/O keeps the layout of the model it came from
    (``external_perm``), through TRANSPOSE nodes at the boundary. GRU and RNN layers are
    unrolled and LSTMs take TFLM's form (see tinyc.backends.tflm.recurrent); what
    ``compile`` should say about that is appended to ``notes``.
    """
    require_tflite_ops(g)
    unrolled, rec_notes, _ = lower_recurrent(g)
    if notes is not None:
        notes.extend(rec_notes)
    g = unrolled.copy() if unrolled is g else unrolled
    head, tail = _boundary_transposes(g) if file_layout else ([], [])
    nodes: list[Node] = list(head)
    for node in g.nodes:
        if node.op in WINDOW_OPS and padding_kind(node, g) is None:
            nodes.append(_explicit_pad(node, g))
        if node.op == "LSTM":
            nodes.extend(prepare_lstm(node, g).nodes)
            continue
        nodes.append(node)
    g.nodes = nodes + tail
    return g
