"""``tinyc.SkipGRU`` / ``tinyc.SkipLSTM`` (custom domain ``tinyc``, version 1): tinyc.torch's
learned Skip RNN layers as ``torch.onnx.export(..., custom_translation_table=
tinyc.torch.onnx_translation_table())`` writes them (tinyc/torch_skip.py). Inputs: x
[N, T, F] (batch first), PyTorch's weight_ih, weight_hh, bias_ih, bias_hh (optional) and the
gate's weight [1, H] and bias [1]; outputs y [N, T, H], h_T [N, H] (and c_T), p_T, updates.
The same IR as from the PyTorch frontend (tinyc.frontend.torch.ops_skip.skip_layer_nodes):
the layer guarded by a SKIP_GATE_LEARNED gate; p_T and the updates are not compiled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.registry import inputs, onnx_op


class _Adapter:
    """What skip_layer_nodes needs from a frontend, on the ONNX builder."""

    def __init__(self, b: Builder) -> None:
        self.b, self.g = b, b.g

    def const(self, data: np.ndarray, base: str) -> str:
        return self.b.const_tensor(np.ascontiguousarray(data, np.float32), base)

    def emit_multi(
        self, kind: str, ins: list[str], base: str, wanted: list[bool], attrs: dict[str, Any]
    ) -> list[str]:
        while len(wanted) > 1 and not wanted[-1]:
            wanted = wanted[:-1]
        names = [base] + [f"{base}_state{k}" for k in range(1, len(wanted))]
        return self.b.emit_multi(kind, ins, attrs, names)


def _read(b: Builder, name: str) -> bool:
    """Something reads ONNX value ``name`` (a node or the graph's outputs)."""
    graph = b.om.graph
    return any(name in n.input for n in graph.node) or any(o.name == name for o in graph.output)


@onnx_op("tinyc.SkipGRU", "tinyc.SkipLSTM")
def skip_layer(b: Builder, node: onnx.NodeProto) -> None:
    from tinyc.frontend.torch.ops_skip import skip_layer_nodes

    kind = "lstm" if node.op_type == "SkipLSTM" else "gru"
    states = 2 if kind == "lstm" else 1
    outs = list(node.output) + [""] * (3 + states - len(node.output))
    if any(o and _read(b, o) for o in outs[1 + states :]):
        raise b.unsupported("the update probability p and the updates are not compiled")
    if b.rank(node.input[0]) != 3:
        raise b.unsupported("the input must be [batch, time, features]")
    x = b.as_layout(node.input[0], (0, 1, 2))
    params = [
        b.const(inputs(node, i), "the layer's parameters") if inputs(node, i) else None
        for i in range(1, 7)
    ]
    if params[4] is None or params[5] is None:
        raise b.unsupported("the skip gate's weight and bias are required")
    wanted = [bool(o) and _read(b, o) for o in outs[1 : 1 + states]]
    ir = skip_layer_nodes(_Adapter(b), kind, x, False, params, wanted, b.node_name)
    b.bind(node.output[0], ir[0], (0, 1, 2))
    for o, name in zip(outs[1 : 1 + states], ir[1:], strict=True):
        if o and name:
            b.bind(o, name, (0, 1))
