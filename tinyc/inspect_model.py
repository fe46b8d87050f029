"""``tinyc inspect``: what a model is made of, per node and in total."""

from __future__ import annotations

from typing import Any

from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import Tensor
from tinyc.modelio import external_shape
from tinyc.table import fmt_int, render


def tensor_info(g: Graph, t: Tensor, boundary: bool = False) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": t.name,
        "shape": list(external_shape(g, t.name) if boundary else t.shape),
        "dtype": t.dtype,
    }
    if t.quant is not None:
        q = t.quant
        info["quantization"] = {
            "scale": [float(s) for s in q.scale],
            "zero_point": [int(z) for z in q.zero_point],
            **({"axis": q.axis} if q.axis is not None else {}),
        }
    return info


def inspect_graph(g: Graph) -> dict[str, Any]:
    nodes = []
    for i, n in enumerate(g.nodes):
        op = get_op(n.op)
        out = g.out(n)
        nodes.append(
            {
                "index": i,
                "name": n.name,
                "op": n.op,
                "inputs": [
                    list(g.tensors[x].shape) for x in n.inputs if x and not g.tensors[x].is_const
                ],
                "output": list(out.shape),
                "dtype": out.dtype,
                "params": op.params(n, g),
                "macs": op.macs(n, g),
            }
        )
    return {
        "model": g.name,
        "format": g.source_format,
        "inputs": [tensor_info(g, g.tensors[n], True) for n in g.inputs],
        "outputs": [tensor_info(g, g.tensors[n], True) for n in g.outputs],
        "nodes": nodes,
        "totals": {
            "nodes": len(nodes),
            "params": sum(n["params"] for n in nodes),
            "macs": sum(n["macs"] for n in nodes),
            "weight_bytes": sum(t.nbytes for t in g.constants()),
        },
    }


def format_inspection(info: dict[str, Any]) -> str:
    def shapes(s: list[list[int]]) -> str:
        return " ".join("x".join(map(str, x)) or "scalar" for x in s)

    rows = [
        [
            n["index"],
            n["name"][:48],
            n["op"],
            shapes(n["inputs"]),
            shapes([n["output"]]),
            n["dtype"],
            fmt_int(n["params"]),
            fmt_int(n["macs"]),
        ]
        for n in info["nodes"]
    ]
    head = [f"model {info['model']} ({info['format']})"]
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            q = t.get("quantization")
            qs = f"  scale {q['scale'][0]:.6g} zero point {q['zero_point'][0]}" if q else ""
            head.append(
                f"  {kind[:-1]:6} {t['name']}: {t['dtype']}[{','.join(map(str, t['shape']))}]{qs}"
            )
    table = render(
        ["#", "node", "op", "inputs", "output", "dtype", "params", "MACs"], rows, right={0, 6, 7}
    )
    tot = info["totals"]
    foot = (
        f"total: {tot['nodes']} nodes, {fmt_int(tot['params'])} params "
        f"({fmt_int(tot['weight_bytes'])} bytes of constants), {fmt_int(tot['macs'])} MACs"
    )
    return "\n".join([*head, "", table, "", foot])
