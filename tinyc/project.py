"""The graph a compiled project was made from, stored inside the project directory.

Two files, both deterministic (same graph, same bytes):
- ``graph.json``: a versioned manifest of tensors (shape, dtype, quantization, meta), nodes
  (op, name, inputs, outputs, attributes), graph inputs/outputs and their external layouts;
- ``graph.npz``: the constant tensors' data, one ``.npy`` member per constant.

Loading gives back an identical Graph (see tests/test_quantize.py), so ``tinyc infer DIR``
runs exactly the int8 graph the project's code was generated from.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import QuantParams, Tensor

GRAPH_JSON = "graph.json"
GRAPH_NPZ = "graph.npz"
FORMAT = "tinyc-graph"
VERSION = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _encode(v: Any, where: str) -> Any:
    """JSON form of an attribute value; tuples are plain arrays, lists are tagged, so both
    come back as they were."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, np.generic):
        return _encode(v.item(), where)
    if isinstance(v, tuple):
        return [_encode(x, where) for x in v]
    if isinstance(v, list):
        return {"list": [_encode(x, where) for x in v]}
    if isinstance(v, np.ndarray):
        return {"ndarray": v.tolist(), "dtype": str(v.dtype)}
    if isinstance(v, dict):
        return {"dict": {str(k): _encode(x, where) for k, x in v.items()}}
    raise TinycError(f"{where}: cannot store a {type(v).__name__} value in a project graph")


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_decode(x) for x in v)
    if isinstance(v, dict):
        if "list" in v:
            return [_decode(x) for x in v["list"]]
        if "ndarray" in v:
            return np.asarray(v["ndarray"], dtype=v["dtype"])
        if "dict" in v:
            return {k: _decode(x) for k, x in v["dict"].items()}
        raise TinycError(f"project graph: unknown value encoding {sorted(v)}")
    return v


def _quant(q: QuantParams | None) -> dict | None:
    if q is None:
        return None
    return {
        "scale": [float(s) for s in q.scale],
        "zero_point": [int(z) for z in q.zero_point],
        "axis": q.axis,
    }


def save_project_graph(g: Graph, directory: str | Path) -> list[Path]:
    """Write ``graph.json`` and ``graph.npz`` into ``directory``; returns the two paths."""
    d = Path(directory)
    tensors = []
    members: list[tuple[str, np.ndarray]] = []
    for t in g.tensors.values():
        entry: dict[str, Any] = {
            "name": t.name,
            "shape": list(t.shape),
            "dtype": t.dtype,
            "quant": _quant(t.quant),
            "meta": _encode(t.meta, f"tensor {t.name!r}"),
        }
        if t.variable:
            entry["variable"] = True
        if t.data is not None:
            entry["data"] = f"c{len(members)}"
            members.append((entry["data"], t.data))
        tensors.append(entry)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "name": g.name,
        "source_format": g.source_format,
        "inputs": list(g.inputs),
        "outputs": list(g.outputs),
        "external_perm": {k: list(v) for k, v in g.external_perm.items()},
        "stream": _encode(g.stream, "the graph's stream"),
        "tensors": tensors,
        "nodes": [
            {
                "op": n.op,
                "name": n.name,
                "inputs": list(n.inputs),
                "outputs": list(n.outputs),
                "attrs": _encode(n.attrs, f"node {n.name!r}"),
            }
            for n in g.nodes
        ],
    }
    json_path, npz_path = d / GRAPH_JSON, d / GRAPH_NPZ
    json_path.write_text(json.dumps(manifest, indent=1) + "\n")
    with zipfile.ZipFile(npz_path, "w", zipfile.ZIP_STORED) as z:
        for key, arr in members:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME), buf.getvalue())
    return [json_path, npz_path]


def load_project_graph(directory: str | Path) -> Graph:
    """Read the graph a project directory was compiled from."""
    from tinyc.ir.verify import verify

    d = Path(directory)
    json_path = d / GRAPH_JSON
    if not json_path.exists():
        raise TinycError(f"{d} is not a tinyc project directory (no {GRAPH_JSON})")
    try:
        m = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        raise TinycError(f"{json_path}: unreadable ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise TinycError(f"{json_path} is not a tinyc graph manifest")
    if m.get("version") != VERSION:
        raise TinycError(
            f"{json_path}: graph format version {m.get('version')} (this tinyc reads {VERSION})"
        )
    try:
        with np.load(d / GRAPH_NPZ, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise TinycError(f"{d / GRAPH_NPZ}: unreadable ({e})") from None
    try:
        g = Graph(name=m["name"], source_format=m.get("source_format", ""))
        for t in m["tensors"]:
            q = t.get("quant")
            quant = QuantParams(q["scale"], q["zero_point"], q["axis"]) if q else None
            arr = data[t["data"]] if "data" in t else None
            meta = _decode(t.get("meta") or {"dict": {}})
            g.add_tensor(
                Tensor(
                    t["name"],
                    tuple(t["shape"]),
                    t["dtype"],
                    arr,
                    quant,
                    meta,
                    bool(t.get("variable", False)),
                )
            )
        for n in m["nodes"]:
            attrs = _decode(n["attrs"])
            g.nodes.append(Node(n["op"], n["name"], list(n["inputs"]), list(n["outputs"]), attrs))
        g.inputs, g.outputs = list(m["inputs"]), list(m["outputs"])
        g.external_perm = {k: tuple(v) for k, v in m["external_perm"].items()}
        g.stream = _decode(m.get("stream") or {"dict": {}})
    except (KeyError, TypeError, ValueError) as e:
        raise TinycError(
            f"{json_path}: malformed graph manifest ({type(e).__name__}: {e})"
        ) from None
    verify(g)
    return g
