"""What the C backend wrote, read back from ``model/model.c``: the kernels each node function
calls and the constant data it declares.

The estimate reads the generated code instead of re-deriving the emitters' choices (which
kernel variant a node uses, which constants it needs), so it follows the backend as it changes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_NODE = re.compile(r"^static void __attribute__\(\(noinline\)\) tinyc_node_(\d+)\(void\) \{$")
_COMMENT = re.compile(r"^/\* (\d+): (\S+) (.*?): .* \*/$")
_HELPER = re.compile(r"^static void (?:__attribute__\(\(noinline\)\) )?(\w+)\([^;]*\) \{$")
_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\(")
_ARRAY = re.compile(r"^static const (\w+) (\w+)\[(\d+)\] __attribute__\(\(aligned\((\d+)\)\)\) =")
_STRUCT = re.compile(r"^static const (\w+) (\w+) = \{")
_DESCRIPTORS = re.compile(r"^const tinyc_tensor_t (tinyc_inputs|tinyc_outputs)\[")
_NAME = re.compile(r'^\s*\{"((?:[^"\\]|\\.)*)", tinyc_arena')
_STATE = re.compile(r"^static uint8_t tinyc_state\[\w+\][^;=]*(=?)")

#: sizes of the C scalar types model.c declares arrays of
SCALAR_BYTES = {
    "int8_t": 1,
    "uint8_t": 1,
    "uint16_t": 2,
    "int16_t": 2,
    "int32_t": 4,
    "uint32_t": 4,
    "float": 4,
    "int64_t": 8,
}


@dataclass(frozen=True)
class ConstDecl:
    """One ``static const`` object of model.c (flash)."""

    ctype: str
    name: str
    count: int  # elements; 1 for a struct
    align: int  # requested alignment (0: the type's own)


@dataclass
class ModelSource:
    calls: dict[int, Counter[str]]  # node index -> kernel function -> number of calls
    consts: list[ConstDecl]
    io_names: list[str]  # names of the tensor descriptors (string literals in flash)
    descriptors: int  # tinyc_tensor_t entries
    args: dict[int, list[tuple[str, list[str]]]] = field(default_factory=dict)

    helpers: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)
    node_ops: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (op, name)
    #: the persistent state region has an initial image (.data: in flash and in RAM), not
    #: zeros (.bss)
    state_initialised: bool = False

    def _calls(self, index: int) -> list[tuple[str, list[str]]]:
        """The calls of node ``index``, a helper function it calls replaced by the helper's
        calls, then the calls of the helpers it passes on (e.g. the row producer of a fused
        layer)."""
        out: list[tuple[str, list[str]]] = []
        for kernel, args in self.args.get(index, []):
            out += self.helpers.get(kernel, [(kernel, args)])
            for a in args:
                out += self.helpers.get(a.strip(), [])
        return out

    def kernels(self, index: int) -> Counter[str]:
        """The functions node ``index`` calls, its helpers' included (empty: the node has
        no code, e.g. a view)."""
        return Counter(k for k, _ in self._calls(index))

    def call_args(self, index: int, kernel: str) -> list[list[str]]:
        """The argument expressions of each call of ``kernel`` by node ``index``."""
        return [a for k, a in self._calls(index) if k == kernel]


def split_args(call: str) -> list[str]:
    """Top-level comma-separated arguments of ``f(a, g(b, c), d);``."""
    inner = call[call.index("(") + 1 : call.rindex(")")]
    out, depth, cur = [], 0, []
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur).strip())
    return out


def read_model_c(text: str) -> ModelSource:
    calls: dict[int, Counter[str]] = {}
    args: dict[int, list[tuple[str, list[str]]]] = {}
    consts: list[ConstDecl] = []
    names: list[str] = []
    descriptors = 0
    helpers: dict[str, list[tuple[str, list[str]]]] = {}
    node_ops: dict[int, tuple[str, str]] = {}
    current: Counter[str] | None = None
    helper: list[tuple[str, list[str]]] | None = None
    index = -1
    in_descriptors = False
    state_init = False
    for line in text.splitlines():
        if helper is not None:
            if line == "}":
                helper = None
            elif m := _CALL.match(line):
                helper.append((m.group(1), split_args(line)))
            continue
        if current is not None:
            if line == "}":
                current = None
            elif m := _CALL.match(line):
                current[m.group(1)] += 1
                args.setdefault(index, []).append((m.group(1), split_args(line)))
            continue
        if m := _COMMENT.match(line):
            node_ops[int(m.group(1))] = (m.group(2), m.group(3))
        elif m := _NODE.match(line):
            index = int(m.group(1))
            current = calls.setdefault(index, Counter())
        elif m := _HELPER.match(line):
            helper = helpers.setdefault(m.group(1), [])
        elif m := _STATE.match(line):
            state_init = m.group(1) == "="
        elif m := _ARRAY.match(line):
            consts.append(ConstDecl(m.group(1), m.group(2), int(m.group(3)), int(m.group(4))))
        elif m := _STRUCT.match(line):
            consts.append(ConstDecl(m.group(1), m.group(2), 1, 0))
        elif _DESCRIPTORS.match(line):
            in_descriptors = True
        elif in_descriptors:
            if m := _NAME.match(line):
                names.append(m.group(1))
                descriptors += 1
            if line.startswith("};"):
                in_descriptors = False
    return ModelSource(calls, consts, names, descriptors, args, helpers, node_ops, state_init)


def _round(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def const_bytes(src: ModelSource, struct_bytes: dict[str, int]) -> int:
    """Flash bytes of model.c's constants as laid out by the linker: each object padded to
    its alignment, plus the tensor descriptors and their name strings. ``struct_bytes``:
    sizeof of each struct type (measured by the calibration)."""
    total = 0
    for d in src.consts:
        size = SCALAR_BYTES.get(d.ctype) or struct_bytes.get(d.ctype)
        if size is None:
            raise KeyError(d.ctype)
        total += _round(size * d.count, max(d.align, 4))
    total += src.descriptors * struct_bytes.get("tinyc_tensor_t", 48)
    total += sum(_round(len(n.encode()) + 1, 4) for n in src.io_names)
    return total
