"""ONNX op type -> translator: a function that emits IR nodes for one ONNX node."""

from __future__ import annotations

from collections.abc import Callable

import onnx

from tinyc.frontend.onnx.builder import Builder

Translator = Callable[[Builder, onnx.NodeProto], None]
OPS: dict[str, Translator] = {}


def onnx_op(*op_types: str) -> Callable[[Translator], Translator]:
    def register(fn: Translator) -> Translator:
        for t in op_types:
            if t in OPS:
                raise RuntimeError(f"ONNX op {t} has two translators")
            OPS[t] = fn
        return fn

    return register


def inputs(node: onnx.NodeProto, i: int) -> str:
    """The name of optional input ``i`` of ``node``, or "" when absent."""
    return node.input[i] if i < len(node.input) else ""
