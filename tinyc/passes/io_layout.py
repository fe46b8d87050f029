"""Make the graph's inputs and outputs use the model file's own layout.

Frontends keep NHWC inside and record in ``external_perm`` how each boundary tensor is laid
out in the file (e.g. NCHW for ONNX). A backend whose callers pass raw buffers needs the
file's layout at the boundary, so this pass inserts the TRANSPOSE nodes — or RESHAPE views
when the permutation only moves size-1 dimensions and the bytes are already in order.
"""

from __future__ import annotations

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import Tensor


def _is_view(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def _convert(g: Graph, src: str, dst: str, perm: tuple[int, ...], name: str) -> Node:
    shape = g.tensors[src].shape
    if _is_view(shape, perm):
        return Node("RESHAPE", name, [src], [dst], {"shape": g.tensors[dst].shape})
    return Node("TRANSPOSE", name, [src], [dst], {"perm": tuple(perm)})


def materialize_io_layout(g: Graph) -> Graph:
    for name, perm in list(g.external_perm.items()):
        if tuple(perm) == tuple(range(len(perm))):
            continue
        t = g.tensors[name]
        inner = g.unique_name(f"{name}__nhwc")
        ext_shape = tuple(t.shape[p] for p in perm)
        g.tensors[inner] = Tensor(inner, t.shape, t.dtype, None, t.quant)
        g.tensors[name] = Tensor(name, ext_shape, t.dtype, None, t.quant, dict(t.meta))
        if name in g.inputs:
            # file layout -> NHWC: internal = external.transpose(argsort(perm))
            g.rename_tensor_uses(name, inner)
            g.outputs = [name if o == inner else o for o in g.outputs]
            back = tuple(int(i) for i in np.argsort(perm))
            g.nodes.insert(0, _convert(g, name, inner, back, g.unique_name(f"{name}_to_nhwc")))
        if name in g.outputs:
            for n in g.nodes:
                n.outputs = [inner if o == name else o for o in n.outputs]
                n.inputs = [inner if i == name else i for i in n.inputs]
            g.nodes.append(_convert(g, inner, name, tuple(perm), g.unique_name(f"{name}_to_file")))
    g.external_perm = {}
    return g
