"""Recognise a Kronecker-factored fully-connected layer computed with reshapes and batched
matmuls (what ``tinyc.torch.KroneckerLinear`` exports, through ``torch.export`` or ONNX) and
replace it by one KRONECKER_FC node (tinyc/ir/ops/kronecker.py).

The float IR sequence, as both frontends translate it::

    RESHAPE x -> [N, 1, q, t]
    BATCH_MATMUL(., B')       B' a constant [R, t, s] (or [R, s, t] with adj_y)
    BATCH_MATMUL(A', .)       A' a constant [R, p, q] (or [R, q, p] with adj_x)
    SUM axes (1,)             -> [N, p, s]  (or keep_dims: [N, 1, p, s])
    then, each optional and in this order, every step the only reader of the last:
    RESHAPEs, one ADD of a constant that is the same for every row (the bias; its fused
    activation kept), one RELU / RELU6 / RELU_N1_TO_1, RESHAPEs.

becomes KRONECKER_FC(x, A [R, p, q], B [R, s, t], bias [p*s]) with that activation (and a
RESHAPE to the last step's shape when it is not [N, p*s]). The rows of x are its q*t
consecutive values, as RESHAPE reads them; W = sum_r kron(A_r, B_r) is exactly what the
matmuls compute: row (n) of x viewed as X [q, t] gives sum_r A_r X B_r^T.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import Tensor

ACTIVATIONS = ("RELU", "RELU6", "RELU_N1_TO_1")


@dataclass
class Match:
    x: str
    a: np.ndarray  # [R, p, q]
    b: np.ndarray  # [R, s, t]
    rows: int
    nodes: list[Node] = field(default_factory=list)  # replaced, in graph order
    bias: np.ndarray | None = None
    activation: str = "NONE"
    out: str = ""


def _factor(g: Graph, name: str, adj: bool) -> np.ndarray | None:
    """A constant float operand of rank 3 (leading ones dropped), its last two axes swapped
    when ``adj``."""
    t = g.tensors.get(name)
    if t is None or t.data is None or t.dtype != "float32" or t.quant is not None:
        return None
    data = np.asarray(t.data, np.float32)
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3:
        return None
    return data.transpose(0, 2, 1) if adj else data


def _only_reader(g: Graph, consumers: dict, name: str) -> Node | None:
    readers = consumers.get(name, [])
    if name in g.outputs or len(readers) != 1:
        return None
    return readers[0]


def _bias(g: Graph, add: Node, chain: str, rows: int, n_out: int) -> np.ndarray | None:
    """The ADD's constant operand as one bias row, when it adds the same values to every row
    of the chain value (and does not broadcast the chain value itself)."""
    if len(add.inputs) != 2 or chain not in add.inputs:
        return None
    other = add.inputs[1] if add.inputs[0] == chain else add.inputs[0]
    c = g.tensors.get(other)
    shape = g.tensors[chain].shape
    if c is None or c.data is None or c.dtype != "float32" or g.out(add).shape != shape:
        return None
    try:
        full = np.broadcast_to(np.asarray(c.data, np.float32), shape).reshape(rows, n_out)
    except ValueError:
        return None
    return full[0].copy() if np.array_equal(full, np.broadcast_to(full[0], full.shape)) else None


def match(g: Graph, reshape: Node, consumers: dict) -> Match | None:
    xr = g.out(reshape)
    if reshape.op != "RESHAPE" or xr.dtype != "float32" or len(xr.shape) != 4 or xr.shape[1] != 1:
        return None
    rows, _, q, t = xr.shape
    mm1 = _only_reader(g, consumers, xr.name)
    if mm1 is None or mm1.op != "BATCH_MATMUL" or mm1.inputs[0] != xr.name:
        return None
    if mm1.attrs.get("adj_x", False):
        return None
    bt = _factor(g, mm1.inputs[1], bool(mm1.attrs.get("adj_y", False)))  # [R, t, s]
    if bt is None or bt.shape[1] != t:
        return None
    rank, _, s = bt.shape
    z = g.out(mm1)
    if z.shape != (rows, rank, q, s):
        return None
    mm2 = _only_reader(g, consumers, z.name)
    if mm2 is None or mm2.op != "BATCH_MATMUL" or mm2.inputs[1] != z.name:
        return None
    if mm2.attrs.get("adj_y", False):
        return None
    a = _factor(g, mm2.inputs[0], bool(mm2.attrs.get("adj_x", False)))  # [R, p, q]
    if a is None or a.shape[0] != rank or a.shape[2] != q:
        return None
    p = a.shape[1]
    if g.out(mm2).shape != (rows, rank, p, s):
        return None
    red = _only_reader(g, consumers, g.out(mm2).name)
    if red is None or red.op != "SUM" or tuple(red.attrs.get("axes", ())) not in ((1,), (-3,)):
        return None
    m = Match(reshape.inputs[0], a, bt.transpose(0, 2, 1), rows, [reshape, mm1, mm2, red])
    cur = red.outputs[0]
    while True:
        nxt = _only_reader(g, consumers, cur)
        if nxt is None or len(nxt.outputs) != 1 or g.out(nxt).dtype != "float32":
            break
        if nxt.op == "RESHAPE":
            pass
        elif nxt.op == "ADD" and m.bias is None and m.activation == "NONE":
            bias = _bias(g, nxt, cur, rows, p * s)
            act = nxt.attrs.get("activation", "NONE")
            if bias is None or act not in ("NONE", *ACTIVATIONS):
                break
            m.bias, m.activation = bias, act
        elif nxt.op in ACTIVATIONS and m.activation == "NONE":
            m.activation = nxt.op
        else:
            break
        m.nodes.append(nxt)
        cur = nxt.outputs[0]
    m.out = cur
    return m


def _replace(g: Graph, m: Match) -> None:
    first = m.nodes[1]  # the first matmul names the layer
    name = first.name
    rank, p, _ = m.a.shape
    _, s, _ = m.b.shape
    ins = [m.x]
    for tag, data in (("a", m.a), ("b", m.b), ("bias", m.bias)):
        if data is None:
            continue
        tn = g.unique_name(f"{name}/kron_{tag}")
        g.add_tensor(Tensor(tn, data.shape, "float32", np.ascontiguousarray(data, np.float32)))
        ins.append(tn)
    out_shape = g.tensors[m.out].shape
    new: list[Node] = []
    flat = (m.rows, p * s)
    y = m.out
    if out_shape != flat:
        y = g.unique_name(f"{name}/kron_out")
        g.add_tensor(Tensor(y, flat, "float32"))
    new.append(Node("KRONECKER_FC", name, ins, [y], {"activation": m.activation}))
    if y != m.out:
        new.append(Node("RESHAPE", f"{name}/kron_reshape", [y], [m.out], {"shape": out_shape}))
    at = g.nodes.index(m.nodes[0])
    dropped = {id(n) for n in m.nodes}
    g.nodes = g.nodes[:at] + new + [n for n in g.nodes[at:] if id(n) not in dropped]


def fuse_kronecker(g: Graph) -> Graph:
    """Every float RESHAPE -> BATCH_MATMUL -> BATCH_MATMUL -> SUM Kronecker sequence as one
    KRONECKER_FC node (in place; returns ``g``)."""
    changed = True
    while changed:
        changed = False
        consumers = g.consumers()
        for node in g.nodes:
            if node.op != "RESHAPE":
                continue
            m = match(g, node, consumers)
            if m is not None:
                _replace(g, m)
                changed = True
                break
    if any(n.op == "KRONECKER_FC" for n in g.nodes):
        g.remove_unused()
    return g
