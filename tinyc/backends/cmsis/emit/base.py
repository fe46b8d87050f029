"""The emitter protocol of the C backend: one emitter per op kind, looked up by kind."""

from __future__ import annotations

from typing import ClassVar

from tinyc.backends.cmsis.cwriter import CContext
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.planner import Overlap


class Emitter:
    kinds: ClassVar[tuple[str, ...]]

    def scratch(self, node: Node, g: Graph, target: str) -> int:
        """Bytes of kernel scratch the node needs on ``target`` (planned into the arena)."""
        return 0

    def scratch_over(self, node: Node, g: Graph, target: str) -> int | None:
        """The input whose bytes the scratch may take over, or None: the kernel widens
        that input into its scratch from the last element down, so the scratch may start
        anywhere at or after the input's start when the input dies here."""
        return None

    def alias(self, node: Node, g: Graph) -> tuple[int, str] | None:
        """(input index, "view" | "inplace") when the output may live in that input's bytes."""
        return None

    def overlap(self, node: Node, g: Graph, target: str) -> Overlap | None:
        """How far the output may reach into the input the kernel consumes in order
        (see tinyc.planner.Overlap), or None."""
        return None

    def emit(self, node: Node, g: Graph, c: CContext) -> None:
        raise NotImplementedError


EMITTERS: dict[str, Emitter] = {}
#: emitters of other kernel libraries ("cmsis-nn": CMSIS-NN calls); a kind a library does
#: not cover falls back to tinyc's own emitter
KERNEL_LIBRARIES: dict[str, dict[str, Emitter]] = {}


def emitter(cls: type[Emitter], library: str = "tinyc") -> type[Emitter]:
    inst = cls()
    table = EMITTERS if library == "tinyc" else KERNEL_LIBRARIES.setdefault(library, {})
    for kind in cls.kinds:
        if kind in table:
            raise RuntimeError(f"two {library} C emitters for {kind}")
        table[kind] = inst
    return cls


def library_emitter(library: str):
    """Class decorator registering an emitter of another kernel library."""
    return lambda cls: emitter(cls, library)


def get_emitter(node: Node, kernels: str = "tinyc") -> Emitter:
    if kernels != "tinyc" and node.op in KERNEL_LIBRARIES.get(kernels, {}):
        return KERNEL_LIBRARIES[kernels][node.op]
    try:
        return EMITTERS[node.op]
    except KeyError:
        raise UnsupportedError(
            f"the C backend has no kernel for {node.op} (node {node.name!r})"
        ) from None


def require_int8(node: Node, g: Graph) -> None:
    for name in [i for i in node.inputs if i] + node.outputs:
        t = g.tensors[name]
        if t.dtype != "int8" and not t.is_const:
            raise UnsupportedError(
                f"node {node.name!r} ({node.op}): the C backend runs int8 graphs; tensor "
                f"{name!r} is {t.dtype} (quantize the model first: --calibration)"
            )


def shape_i32(c: CContext, base: str, values) -> str:
    import numpy as np

    return c.const_array(base, np.asarray(list(values), np.int32), "int32_t")
