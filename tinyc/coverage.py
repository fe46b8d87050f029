"""Operator coverage, read from the code itself: for every IR op, which frontend operators
translate into it, whether the reference interpreter runs it in float and in int8, and
whether each backend can emit it.

Nothing here is a hand-kept list of what tinyc supports. The op registry
(tinyc.ir.ops.REGISTRY), the frontends' translator tables (TFLite ``READERS``, ONNX
``OPS``, PyTorch ``HANDLERS``) and the backends' emitter tables are walked; which IR ops a
translator produces is read from the op-kind names its code (and the helpers it calls)
holds. ``tinyc ops`` prints the result; the README's table is its markdown and a test keeps
the two equal.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

#: the builtin operators TFLite Micro's MicroMutableOpResolver can register (tflite-micro's
#: micro_mutable_op_resolver.h at the pinned commit, CUSTOM left out)
TFLM_BUILTINS = (
    "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D",
    "BATCH_MATMUL", "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST",
    "CEIL", "CONCATENATION", "CONV_2D", "COS", "CUMSUM", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "DIV", "DYNAMIC_UPDATE_SLICE", "ELU", "EMBEDDING_LOOKUP", "EQUAL", "EXP",
    "EXPAND_DIMS", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER",
    "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "IF", "L2_NORMALIZATION", "L2_POOL_2D",
    "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR",
    "LOGISTIC", "LOG_SOFTMAX", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL",
    "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "READ_VARIABLE",
    "REDUCE_ALL", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2", "SHAPE", "SIN",
    "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT",
    "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SVDF", "TANH",
    "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE",
    "WHILE", "ZEROS_LIKE",
)  # fmt: skip

#: translators whose IR op is computed rather than named in their code (the frontend
#: operator's own name is the IR op's): frontend -> operator -> IR ops
COMPUTED_KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    # resource variables (tinyc.frontend.tflite_variables): the handle and the init subgraph
    # make the state tensor the two ops read and write
    "tflite": {
        "READ_VARIABLE": ("READ_VARIABLE",), "VAR_HANDLE": ("READ_VARIABLE",),
        "ASSIGN_VARIABLE": ("ASSIGN_VARIABLE",), "CALL_ONCE": ("ASSIGN_VARIABLE",),
    },
    # learned skipping (tinyc.torch's SkipGRU / SkipLSTM): the layer and its gate
    "onnx": {
        "LSTM": ("LSTM",), "GRU": ("GRU",), "RNN": ("RNN",),
        "tinyc.SkipGRU": ("GRU", "SKIP_GATE_LEARNED"),
        "tinyc.SkipLSTM": ("LSTM", "SKIP_GATE_LEARNED"),
    },
    "torch": {
        "lstm": ("LSTM",), "lstm_cell": ("LSTM",), "gru": ("GRU",), "gru_cell": ("GRU",),
        "rnn_tanh": ("RNN",), "rnn_relu": ("RNN",), "rnn_tanh_cell": ("RNN",),
        "rnn_relu_cell": ("RNN",), "skip_gru": ("GRU", "SKIP_GATE_LEARNED"),
        "skip_lstm": ("LSTM", "SKIP_GATE_LEARNED"),
    },
}  # fmt: skip

FRONTENDS = ("tflite", "onnx", "torch")


@dataclass
class OpCoverage:
    """One IR op: the frontend operators that produce it and what runs it."""

    op: str
    tflite: list[str] = field(default_factory=list)
    onnx: list[str] = field(default_factory=list)
    torch: list[str] = field(default_factory=list)
    #: the reference interpreter in float32
    float: bool = False
    #: int8 in the reference interpreter: "tflm" (TFLM's kernel, bit-exact), "tinyc" (an op
    #: TFLM runs in float only: tinyc's own int8 definition), "" (none)
    int8: str = ""
    #: the C backend has a kernel (it compiles int8 graphs)
    c: bool = False
    #: the TFLM backend writes it: "yes", "float" (its int8 form is tinyc's own), "unrolled"
    #: (as TFLM builtins per time step: TFLM's own int8 results), ""
    tflm: str = ""


@dataclass
class Coverage:
    ops: list[OpCoverage]
    #: frontend -> every operator name its table holds
    frontend_ops: dict[str, list[str]]
    #: frontend -> operators that map to no IR op of their own (views, layout, no-ops)
    unmapped: dict[str, list[str]]

    def counts(self) -> dict[str, int]:
        ops = self.ops
        tflite_read = set(self.frontend_ops["tflite"])
        return {
            "ir_ops": len(ops),
            "tflite_builtins_read": len(tflite_read),
            "tflm_builtins": len(TFLM_BUILTINS),
            "tflm_builtins_read": len(tflite_read & set(TFLM_BUILTINS)),
            "onnx_ops": len(self.frontend_ops["onnx"]),
            "torch_ops": len(self.frontend_ops["torch"]),
            "interpreter_float": sum(o.float for o in ops),
            "interpreter_int8": sum(bool(o.int8) for o in ops),
            "interpreter_int8_tflm": sum(o.int8 == "tflm" for o in ops),
            "interpreter_int8_tinyc": sum(o.int8 == "tinyc" for o in ops),
            "c_backend": sum(o.c for o in ops),
            "tflm_backend": sum(bool(o.tflm) for o in ops),
        }

    def tflm_builtins_missing(self) -> list[str]:
        """TFLM's builtins that no TFLite reader of tinyc takes."""
        return sorted(set(TFLM_BUILTINS) - set(self.frontend_ops["tflite"]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "ops": [asdict(o) for o in self.ops],
            "tflm_builtins_not_read": self.tflm_builtins_missing(),
            "unmapped_frontend_ops": self.unmapped,
        }


# -- which IR ops a translator produces ----------------------------------------------------


def _strings(code: types.CodeType) -> Iterable[str]:
    for const in code.co_consts:
        if isinstance(const, str):
            yield const
        elif isinstance(const, tuple | frozenset):
            yield from (c for c in const if isinstance(c, str))
        elif isinstance(const, types.CodeType):
            yield from _strings(const)


def _names(code: types.CodeType) -> Iterable[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _in_frontends(fn: Any) -> bool:
    return isinstance(fn, types.FunctionType) and fn.__module__.startswith("tinyc.frontend")


def _values(value: Any, name: str) -> Iterable[str]:
    """Strings in a global table a translator reads: the entry of the frontend operator's
    own name when the table is keyed by it, else every value."""
    if isinstance(value, dict):
        items = [value[name]] if name in value else list(value.values())
    elif isinstance(value, list | tuple | frozenset | set):
        items = list(value)
    else:
        return
    for item in items:
        if isinstance(item, str):
            yield item
        elif isinstance(item, tuple | list):
            yield from (v for v in item if isinstance(v, str))


def produced_kinds(fn: Callable, name: str, kinds: set[str]) -> set[str]:
    """The IR op kinds translator ``fn`` (registered for operator ``name``) names: in its
    own code, closure and the global tables it reads; when that names none, in the
    frontend helpers it calls (recursively, the first level that names some)."""
    seen: set[int] = set()

    def direct(f: Any) -> set[str]:
        code = f.__code__
        found = {s for s in _strings(code) if s in kinds}
        for cell in f.__closure__ or ():
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if isinstance(v, str) and v in kinds:
                found.add(v)
            elif _in_frontends(v):
                found |= walk(v)
        for n in set(_names(code)):
            v = f.__globals__.get(n)
            if not callable(v) and not isinstance(v, types.ModuleType):
                found |= {s for s in _values(v, name) if s in kinds}
        return found

    def walk(f: Any) -> set[str]:
        if id(f) in seen:
            return set()
        seen.add(id(f))
        found = direct(f)
        if found:
            return found
        for n in set(_names(f.__code__)):
            v = f.__globals__.get(n)
            if _in_frontends(v):
                found |= walk(v)
        return found

    if not _in_frontends(fn):
        return set()
    return walk(fn)


def _norm(s: str) -> str:
    return s.replace("_", "").lower()


def frontend_map(
    table: dict[str, Callable], kinds: set[str], computed: dict[str, tuple[str, ...]]
) -> dict[str, set[str]]:
    """Frontend operator -> IR op kinds. When several operators share one translator, an
    IR op whose name matches one of theirs (ArgMax / ARG_MAX) goes to that one only."""
    by_fn: dict[int, list[str]] = {}
    for name, fn in table.items():
        by_fn.setdefault(id(fn), []).append(name)
    out: dict[str, set[str]] = {}
    # a translator with a computed kind names the other computed kinds of its family too
    # (one translator for LSTM, GRU and RNN): only its own counts
    family = {k for ks in computed.values() for k in ks}
    for name, fn in table.items():
        found = produced_kinds(fn, name, kinds)
        if name in computed:
            found = (found - family) | set(computed[name])
        sharing = by_fn[id(fn)]
        if len(sharing) > 1 and all(any(_norm(k) == _norm(n) for k in found) for n in sharing):
            found = {k for k in found if not any(_norm(k) == _norm(n) for n in sharing)} | {
                k for k in found if _norm(k) == _norm(name)
            }
        out[name] = found
    return out


# -- the table ------------------------------------------------------------------------------


def _overrides(op: Any, method: str) -> bool:
    from tinyc.ir.ops.base import OpDef

    return getattr(type(op), method) is not getattr(OpDef, method)


def int8_semantics(op: Any) -> str:
    """ "tflm", "tinyc" or "" for an op definition (see OpCoverage.int8)."""
    from tinyc.ir.ops.table import _Table

    declared = getattr(op, "int8_semantics", None)
    if declared is not None:
        return declared
    if isinstance(op, _Table):
        return "tinyc"
    if _overrides(op, "eval_quant"):
        return "tflm"
    if op.output_quant == "same_as_input" and _overrides(op, "eval_float"):
        return "tflm"  # values move unchanged: one implementation serves every dtype
    return ""


def _unrolled() -> None:
    """WHILE and IF (tinyc.frontend.tflite_loops): read, and unrolled / inlined into their
    subgraphs' operators; they map to no IR op of their own."""


def frontend_tables() -> dict[str, dict[str, Callable]]:
    from tinyc.frontend.tflite import READERS
    from tinyc.frontend.tflite_variables import RESOURCE_OPS, Variables

    tables: dict[str, dict[str, Callable]] = {"tflite": dict(READERS)}
    tables["tflite"].update((name, Variables.node) for name in RESOURCE_OPS)
    tables["tflite"]["WHILE"] = tables["tflite"]["IF"] = _unrolled
    try:
        import tinyc.frontend.onnx  # noqa: F401 (registers the translators)
        from tinyc.frontend.onnx.registry import OPS

        tables["onnx"] = dict(OPS)
    except ImportError:
        tables["onnx"] = {}
    try:
        import tinyc.frontend.torch  # noqa: F401
        from tinyc.frontend.torch.registry import HANDLERS

        tables["torch"] = dict(HANDLERS)
    except ImportError:
        tables["torch"] = {}
    return tables


def coverage() -> Coverage:
    from tinyc.backends.cmsis.emit import EMITTERS as C_EMITTERS
    from tinyc.backends.tflm.emitters import EMITTERS as TFLM_EMITTERS
    from tinyc.backends.tflm.recurrent import LOWERINGS as TFLM_LOWERINGS
    from tinyc.ir.ops import REGISTRY

    kinds = {k for k in REGISTRY if k != "UNSUPPORTED"}
    rows = {k: OpCoverage(k) for k in sorted(kinds)}
    tables = frontend_tables()
    unmapped: dict[str, list[str]] = {}
    for frontend in FRONTENDS:
        mapping = frontend_map(tables[frontend], kinds, COMPUTED_KINDS.get(frontend, {}))
        for name, found in sorted(mapping.items()):
            for k in found:
                getattr(rows[k], frontend).append(name)
        unmapped[frontend] = sorted(n for n, found in mapping.items() if not found)
    for k, row in rows.items():
        op = REGISTRY[k]
        row.float = _overrides(op, "eval_float") and k not in ("QUANTIZE", "DEQUANTIZE")
        row.int8 = int8_semantics(op)
        row.c = k in C_EMITTERS
        if k in TFLM_EMITTERS:
            row.tflm = "float" if row.int8 == "tinyc" else "yes"
        elif k in TFLM_LOWERINGS:
            row.tflm = "unrolled"
        for frontend in FRONTENDS:
            getattr(row, frontend).sort()
    frontend_ops = {f: sorted(t) for f, t in tables.items()}
    return Coverage(list(rows.values()), frontend_ops, unmapped)


# -- text ---------------------------------------------------------------------------------

_INT8 = {"tflm": "✓", "tinyc": "tinyc", "": "–"}
_TFLM = {"yes": "✓", "float": "float", "unrolled": "unrolled", "": "–"}


def _names_cell(names: list[str], limit: int = 6) -> str:
    if not names:
        return "–"
    shown = [f"`{n}`" for n in names[:limit]]
    if len(names) > limit:
        shown.append(f"+{len(names) - limit}")
    return " ".join(shown)


def markdown(cov: Coverage) -> str:
    """The coverage table and counts as markdown (the README's operator section)."""
    c = cov.counts()
    lines = [
        f"{c['ir_ops']} IR ops. TFLite: {c['tflite_builtins_read']} builtin operators read, "
        f"{c['tflm_builtins_read']} of the {c['tflm_builtins']} that TFLite Micro's op resolver "
        f"registers; ONNX: {c['onnx_ops']} operator types; PyTorch: {c['torch_ops']} aten "
        "operators.",
        "",
        f"Interpreter: {c['interpreter_float']} ops in float, {c['interpreter_int8']} in int8 "
        f"({c['interpreter_int8_tflm']} with TFLite's integer kernels, "
        f"{c['interpreter_int8_tinyc']} with tinyc's own int8 definition where TFLM has no "
        f"int8 kernel). C backend: {c['c_backend']} ops. TFLM backend: {c['tflm_backend']} "
        "ops.",
        "",
        "| IR op | TFLite | ONNX | PyTorch (aten) | float | int8 | C | TFLM |",
        "|---|---|---|---|:-:|:-:|:-:|:-:|",
    ]
    for o in cov.ops:
        lines.append(
            f"| {o.op} | {_names_cell(o.tflite)} | {_names_cell(o.onnx)} | "
            f"{_names_cell(o.torch)} | {'✓' if o.float else '–'} | {_INT8[o.int8]} | "
            f"{'✓' if o.c else '–'} | {_TFLM[o.tflm]} |"
        )
    missing = cov.tflm_builtins_missing()
    lines += [
        "",
        "int8 `tinyc`: TFLM has no int8 kernel; tinyc defines the int8 arithmetic (elementwise "
        "functions: the 256-entry table of the function at the tensors' scales; GRU and RNN: "
        "integer gates in the manner of TFLM's LSTM). TFLM `float`: the TFLM backend writes "
        "the op in float only; `unrolled`: as TFLM builtins per time step (FULLY_CONNECTED, "
        "LOGISTIC, TANH, MUL, ADD), whose int8 results are TFLM's, not tinyc's. C: int8 "
        "graphs.",
        "",
        "`WHILE` is read and unrolled into its body's operators when its trip count is known "
        "at compile time (a loop over a sequence's steps); `IF` with a condition known then "
        "is inlined (a run-time condition is refused by name).",
        "",
        f"TFLite Micro builtins tinyc does not read yet ({len(missing)}): "
        + (", ".join(missing) if missing else "none")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def text(cov: Coverage) -> str:
    """A plain table for the terminal."""
    head = ("IR op", "TFLite", "ONNX", "aten", "float", "int8", "C", "TFLM")
    rows = [
        (
            o.op,
            ",".join(o.tflite) or "-",
            ",".join(o.onnx) or "-",
            ",".join(o.torch) or "-",
            "yes" if o.float else "-",
            o.int8 or "-",
            "yes" if o.c else "-",
            o.tflm or "-",
        )
        for o in cov.ops
    ]
    widths = [min(30, max(len(r[i]) for r in [head, *rows])) for i in range(len(head))]

    def fmt(r) -> str:
        cells = [
            (v if len(v) <= w else v[: w - 1] + "…").ljust(w)
            for v, w in zip(r, widths, strict=True)
        ]
        return "  ".join(cells).rstrip()

    c = cov.counts()
    summary = ", ".join(f"{k} {v}" for k, v in c.items())
    return "\n".join([fmt(head), *map(fmt, rows), "", summary]) + "\n"


# -- the README section ---------------------------------------------------------------------

README_BEGIN = "<!-- ops-table -->"
README_END = "<!-- /ops-table -->"


def readme_section(readme_text: str) -> str:
    """The text between the README's ops-table markers."""
    try:
        start = readme_text.index(README_BEGIN) + len(README_BEGIN)
        end = readme_text.index(README_END, start)
    except ValueError:
        raise ValueError(f"no {README_BEGIN} ... {README_END} markers") from None
    return readme_text[start:end].strip("\n") + "\n"


def update_readme(path, cov: Coverage | None = None) -> None:
    """Rewrite the README's ops-table section with the current markdown."""
    from pathlib import Path

    p = Path(path)
    text_ = p.read_text()
    readme_section(text_)  # the markers must exist
    start = text_.index(README_BEGIN) + len(README_BEGIN)
    end = text_.index(README_END, start)
    body = markdown(cov if cov is not None else coverage())
    p.write_text(text_[:start] + "\n" + body + text_[end:])
