"""Single-operator .tflite checks for TFLite builtins (test utility).

``tflm_roundtrip`` writes an IR graph with tinyc's TFLite writer, reads the file back with
the TFLite reader (so the reader's translation is under test too), runs the file on TFLite
Micro (PyPI tflite-micro) and the read graph on tinyc's interpreter, and compares: bit for
bit for integer outputs, within a tolerance for float ones. ``raw_tflite`` builds a
one-operator file straight from the schema, for operators tinyc's writer never writes
(SLICE, SQUEEZE, ...).
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from c_host import build_host, run_host
from graphs import Builder

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.backends.tflm import host
from tinyc.backends.tflm import writer as W
from tinyc.backends.tflm.writer import build_model
from tinyc.frontend.tflite import load_tflite
from tinyc.ir.graph import Graph
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.ir.verify import verify
from tinyc.modelio import random_inputs
from tinyc.tflite_schema import schema

ALL_INT8 = np.arange(-128, 128, dtype=np.int8)


class OpBuilder(Builder):
    """graphs.Builder with float / plain tensors and tensors sharing another's parameters."""

    def plain(self, name: str, shape, dtype: str = "float32") -> str:
        self.g.add_tensor(Tensor(name, tuple(shape), dtype))
        return name

    def like(self, name: str, shape, other: str, dtype: str = "int8") -> str:
        """An int8 tensor with ``other``'s quantization (ops that do not rescale)."""
        self.g.add_tensor(Tensor(name, tuple(shape), dtype, None, self.g.tensors[other].quant))
        return name

    def const(self, name: str, values, dtype: str, quant: QuantParams | None = None) -> str:
        data = np.asarray(values, dtype=dtype)
        self.g.add_tensor(Tensor(name, data.shape, dtype, data, quant))
        return name


def unary_graph(op: str, seed: int, shape, dtype: str = "int8", out=None, same=False, **attrs):
    """x -> op -> y; int8 output parameters ``out`` = (scale, zero point), or the input's
    with ``same``; float32 when ``dtype`` says so."""
    b = OpBuilder(f"{op.lower()}_{seed}_{dtype}", seed)
    if dtype == "int8":
        b.act("x", shape)
        if same:
            b.like("y", (1,), "x")
        else:
            b.act("y", (1,), *(out or (None, None)))
    else:
        b.plain("x", shape, dtype)
        b.plain("y", (1,), dtype)
    b.node(op, ["x"], ["y"], **attrs)
    return b.finish(["x"], ["y"])


def every_value(g: Graph, seeds=range(2)) -> list[list[np.ndarray]]:
    """Random inputs, then one holding every int8 value (repeated to fill the shape)."""
    x = g.tensors[g.inputs[0]]
    full = np.resize(ALL_INT8, x.size).reshape(x.shape)
    return [random_inputs(g, s) for s in seeds] + [[full, *random_inputs(g, 9)[1:]]]


def tflm_outputs(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """TFLM's outputs (scalars set as they are: the host runner widens 0-d arrays)."""
    it = host.interpreter(data)
    for i, x in enumerate(inputs):
        it.set_input(x if x.ndim == 0 else np.ascontiguousarray(x), i)
    it.invoke()
    n = schema().Model.GetRootAs(data, 0).Subgraphs(0).OutputsLength()
    return [np.array(it.get_output(i)) for i in range(n)]


def compare_file(
    data: bytes,
    name: str,
    inputs: list[list[np.ndarray]] | None = None,
    tol: float | None = None,
    ops: list[str] | None = None,
) -> Graph:
    """The file's graph (read by tinyc) on the interpreter == TFLM on the file."""
    g = load_tflite(data, name)
    verify(g)
    if ops is not None:
        assert [n.op for n in g.nodes] == ops, [n.op for n in g.nodes]
    cases = inputs if inputs is not None else [random_inputs(g, s) for s in range(3)]
    for k, xs in enumerate(cases):
        ref = tflm_outputs(data, xs)
        ours = interpreter.run(g, xs)
        for out, want in zip(g.outputs, ref, strict=True):
            got = ours[out]
            assert got.shape == want.shape and got.dtype == want.dtype, (
                f"case {k} {out}: tinyc {got.dtype}{list(got.shape)}, TFLM "
                f"{want.dtype}{list(want.shape)}"
            )
            if tol is None or not np.issubdtype(got.dtype, np.floating):
                diff = np.flatnonzero(got != want)
                assert diff.size == 0, (
                    f"case {k} {out}: {diff.size}/{got.size} differ, first at {diff[0]}: "
                    f"TFLM {want.flat[diff[0]]} vs tinyc {got.flat[diff[0]]}"
                )
            else:
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"case {k}")
    return g


def tflm_roundtrip(
    g: Graph, inputs: list[list[np.ndarray]] | None = None, tol: float | None = None
) -> Graph:
    """``g`` written as .tflite, read back (same ops), run on TFLM and on the interpreter;
    returns the read graph."""
    return compare_file(build_model(g).data, g.name, inputs, tol, [n.op for n in g.nodes])


def raw_tflite(
    builtin: str,
    tensors: list[Tensor],
    inputs: list[str],
    outputs: list[str],
    options=None,
) -> bytes:
    """A one-operator .tflite (constants carry their data; graph inputs: the non-constant
    operator inputs)."""
    S = schema()
    buffers = W._Buffers()
    names = [t.name for t in tensors]
    by_name = {t.name: t for t in tensors}
    sg = S.SubGraphT()
    sg.tensors = [W._tensor(t, buffers) for t in tensors]
    op = S.OperatorT()
    op.opcodeIndex = 0
    op.inputs = [names.index(n) if n else -1 for n in inputs]
    op.outputs = [names.index(n) for n in outputs]
    op.builtinOptionsType = W._options_type(options)
    op.builtinOptions = options
    sg.operators = [op]
    sg.inputs = [names.index(n) for n in inputs if n and by_name[n].data is None]
    sg.outputs = [names.index(n) for n in outputs]
    model = S.ModelT()
    model.version = 3
    model.operatorCodes = [W._opcode(builtin, 1)]
    model.subgraphs = [sg]
    model.buffers = buffers.items
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def pack_subgraphs(codes: list[str], subgraphs: list, buffers: list) -> bytes:
    """A .tflite of several subgraphs (object API), operator codes in ``codes`` order."""
    S = schema()
    model = S.ModelT()
    model.version = 3
    model.operatorCodes = [W._opcode(kind, 1) for kind in codes]
    model.subgraphs = subgraphs
    model.buffers = buffers
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def options(cls: str, **fields):
    o = getattr(schema(), cls)()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


def c_matches(
    g: Graph, workdir: Path, inputs: list[list[np.ndarray]], targets=("plain", "dsp", "mve")
) -> None:
    """The generated C of ``g`` for each target (host gcc, ASan/UBSan) == the interpreter."""
    for target in targets:
        gen = generate_model(g, g.name, target)
        exe = build_host(gen, workdir / target)
        for k, xs in enumerate(inputs):
            ref = interpreter.run(gen.graph, xs)
            for name, got in zip(gen.graph.outputs, run_host(exe, gen, xs), strict=True):
                np.testing.assert_array_equal(
                    got, ref[name].reshape(got.shape), f"{target} case {k} {name}"
                )


def merged(graphs: list[Graph], name: str) -> Graph:
    """One graph running ``graphs`` side by side (tensors and nodes prefixed g<i>_), so one
    C build covers them all."""
    from tinyc.ir.graph import Node

    out = Graph(name=name, source_format="test")
    for i, g in enumerate(graphs):
        p = f"g{i}_"
        for t in g.tensors.values():
            out.add_tensor(Tensor(p + t.name, t.shape, t.dtype, t.data, t.quant))
        for n in g.nodes:
            out.nodes.append(
                Node(
                    n.op,
                    p + n.name,
                    [p + x if x else "" for x in n.inputs],
                    [p + y for y in n.outputs],
                    dict(n.attrs),
                )  # fmt: skip
            )
        out.inputs += [p + x for x in g.inputs]
        out.outputs += [p + y for y in g.outputs]
    verify(out)
    return out


def every_value_all_inputs(g: Graph, seeds=range(2)) -> list[list[np.ndarray]]:
    """Random inputs, then every int8 input holding every int8 value."""
    full = [
        np.resize(ALL_INT8, g.tensors[n].size).reshape(g.tensors[n].shape)
        if g.tensors[n].dtype == "int8"
        else x
        for n, x in zip(g.inputs, random_inputs(g, 9), strict=True)
    ]
    return [random_inputs(g, s) for s in seeds] + [full]
