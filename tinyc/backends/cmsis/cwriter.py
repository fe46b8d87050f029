"""Emission context for model.c: constant arrays in flash, arena pointers, kernel calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from tinyc.ir.graph import Graph
from tinyc.planner import MemoryPlan

C_TYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "float32": "float",
    "bool": "uint8_t",
    "int64": "int64_t",
}


def c_identifier(name: str) -> str:
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name).strip("_") or "t"
    if ident[0].isdigit():
        ident = "t_" + ident
    return ident[:40]


def c_literal(v: int | float, ctype: str) -> str:
    if ctype == "float":
        f = float(np.float32(v))
        if np.isnan(f):
            return "NAN"
        if np.isinf(f):
            return "INFINITY" if f > 0 else "-INFINITY"
        return f"{f!r}f"
    v = int(v)
    if ctype == "int32_t" and v == -(1 << 31):
        return "INT32_MIN"
    return str(v)


def format_array(values: np.ndarray, ctype: str, per_line: int = 20) -> str:
    flat = values.reshape(-1)
    if ctype == "float":
        items = [c_literal(v, ctype) for v in flat.tolist()]
    else:
        items = [str(v) if v != -(1 << 31) else "INT32_MIN" for v in flat.astype(np.int64).tolist()]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n  " + ",\n  ".join(lines) + "\n}" if lines else "{0}"


@dataclass
class CContext:
    """Collects what one model.c needs while emitters run, node by node."""

    g: Graph
    plan: MemoryPlan
    target: str = "dsp"  # "plain" | "dsp" | "mve": which kernel variants and layouts to use
    decls: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    headers: set[str] = field(default_factory=set)
    const_bytes: int = 0
    _names: set[str] = field(default_factory=set)
    _node_index: int = 0
    _dedupe: dict[tuple, str] = field(default_factory=dict)
    #: generated Helium assembly functions by name (model/model_mve.S)
    mve_asm: dict[str, str] = field(default_factory=dict)

    def begin_node(self, index: int) -> None:
        self._node_index = index
        self.body = []

    def symbol(self, base: str) -> str:
        name = c_identifier(base)
        k = 1
        cand = name
        while cand in self._names:
            cand = f"{name}_{k}"
            k += 1
        self._names.add(cand)
        return cand

    def const_array(self, base: str, values: np.ndarray, ctype: str, align: int = 4) -> str:
        """A ``static const`` array in flash; identical contents are emitted once."""
        values = np.ascontiguousarray(values)
        key = (ctype, values.shape, values.tobytes())
        if key in self._dedupe:
            return self._dedupe[key]
        sym = self.symbol(base)
        n = max(1, values.size)
        self.decls.append(
            f"static const {ctype} {sym}[{n}] __attribute__((aligned({align}))) = "
            f"{format_array(values, ctype)};"
        )
        self.const_bytes += values.nbytes
        self._dedupe[key] = sym
        return sym

    def const_struct(self, base: str, ctype: str, fields: str) -> str:
        sym = self.symbol(base)
        self.decls.append(f"static const {ctype} {sym} = {{{fields}}};")
        return sym

    def ptr(self, tensor: str, ctype: str | None = None) -> str:
        """A C expression pointing at ``tensor``'s bytes (arena offset or flash constant)."""
        t = self.g.tensors[tensor]
        ctype = ctype or C_TYPES[t.dtype]
        if t.is_const:
            assert t.data is not None
            return self.const_array(f"c_{tensor}", t.data, C_TYPES[t.dtype])
        if t.variable:
            return f"(({ctype} *)(tinyc_state + {self.plan.state_offsets[tensor]}))"
        return f"(({ctype} *)(tinyc_arena + {self.plan.offsets[tensor]}))"

    def scratch(self, ctype: str = "int8_t") -> str:
        """The node's scratch buffer, or a null pointer when it needs none."""
        if self._node_index not in self.plan.scratch:
            return "0"
        offset, _ = self.plan.scratch[self._node_index]
        return f"(({ctype} *)(tinyc_arena + {offset}))"

    def call(self, code: str) -> None:
        self.body.extend(code.splitlines())

    def need(self, *sources: str) -> None:
        """Runtime .c files the model calls."""
        self.sources.update(sources)

    def need_header(self, *headers: str) -> None:
        """Runtime headers of always-inline kernels that model.c includes."""
        self.headers.update(headers)
