"""Fold a TRANSPOSE that only reorders the features of a FULLY_CONNECTED input into the
FC's constant weights: TRANSPOSE -> RESHAPE -> FC becomes RESHAPE -> FC with permuted weight
columns (typically the NHWC -> NCHW transpose before an ONNX/PyTorch Flatten)."""

from __future__ import annotations

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import Tensor


def _try(g: Graph, fc: Node, producers: dict[str, Node], consumers: dict) -> bool:
    w = g.inp(fc, 1)
    if w is None or not w.is_const or len(w.shape) != 2:
        return False
    flat = producers.get(fc.inputs[0])
    if flat is None or flat.op != "RESHAPE" or fc.attrs.get("keep_num_dims", False):
        return False
    tr = producers.get(flat.inputs[0])
    if tr is None or tr.op != "TRANSPOSE" or tr.outputs[0] in g.outputs:
        return False
    if len(consumers.get(tr.outputs[0], [])) != 1 or len(consumers.get(flat.outputs[0], [])) != 1:
        return False
    x = g.tensors[tr.inputs[0]]
    perm = tuple(tr.attrs["perm"])
    rows = x.shape[0]
    k = w.shape[1]
    # Each FC row must be one slice along axis 0, which the transpose keeps in place.
    if perm[0] != 0 or x.size != rows * k or g.out(flat).shape[-1] != k:
        return False
    inner = x.shape[1:]
    # column j of the transposed features is element order[j] of the untransposed ones
    order = np.arange(k).reshape(inner).transpose([p - 1 for p in perm[1:]]).reshape(-1)
    data = np.empty_like(w.data)
    data[:, order] = w.data
    name = g.unique_name(f"{w.name}_permuted")
    g.add_tensor(Tensor(name, w.shape, w.dtype, data, w.quant))
    fc.inputs[1] = name
    flat.inputs[0] = tr.inputs[0]
    return True


def fold_transpose_fc(g: Graph) -> Graph:
    changed = True
    while changed:
        changed = False
        producers, consumers = g.producers(), g.consumers()
        for node in g.nodes:
            if node.op == "FULLY_CONNECTED" and _try(g, node, producers, consumers):
                changed = True
                break
        g.remove_unused()
    return g
