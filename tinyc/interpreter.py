"""The numpy reference interpreter: runs a Graph node by node, float or int8.

For quantized graphs each op follows TFLite Micro's reference kernels bit for bit; this
is the golden model every backend is compared with.
"""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.ir.ops.skip import held_outputs, runs_stepwise
from tinyc.ir.tensor import Tensor, np_dtype


def check_inputs(g: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Validate and convert user inputs (internal layout) to the graph's input dtypes."""
    if len(inputs) != len(g.inputs):
        raise TinycError(f"model takes {len(g.inputs)} input(s), {len(inputs)} given")
    out = []
    for name, x in zip(g.inputs, inputs, strict=True):
        t = g.tensors[name]
        x = np.asarray(x)
        if x.shape != t.shape:
            if x.size == t.size:
                x = x.reshape(t.shape)
            else:
                raise TinycError(f"input {name!r} needs shape {list(t.shape)}, got {list(x.shape)}")
        want = np_dtype(t.dtype)
        if x.dtype != want:
            if np.issubdtype(want, np.integer) and not np.issubdtype(x.dtype, np.integer):
                raise TinycError(f"input {name!r} needs {t.dtype} values, got {x.dtype}")
            if np.issubdtype(want, np.integer):
                info = np.iinfo(want)
                if x.size and (x.min() < info.min or x.max() > info.max):
                    raise TinycError(f"input {name!r} has values outside the {t.dtype} range")
            x = x.astype(want)
        out.append(x)
    return out


def reset_value(t: Tensor) -> int:
    """The raw value a state tensor starts from: the real value 0, i.e. its zero point
    (TFLM's ResetVariableTensors fills int8 variables with their zero point)."""
    return t.quant.zp if t.quant is not None and t.dtype != "float32" else 0


class State:
    """The values of a graph's state tensors (see Tensor.variable) between invocations: what
    a streaming model's firmware keeps in its persistent RAM. Starts at (real) zero."""

    def __init__(self, g: Graph) -> None:
        self._initial = {t.name: reset_value(t) for t in g.states()}
        self.values = {
            t.name: np.full(t.shape, self._initial[t.name], np_dtype(t.dtype)) for t in g.states()
        }

    def reset(self) -> None:
        """Back to zero (``tinyc_reset_state()`` in the generated C)."""
        for name, v in self.values.items():
            v[...] = self._initial[name]


def run(
    g: Graph, inputs: list[np.ndarray], keep_all: bool = False, state: State | None = None
) -> dict[str, np.ndarray]:
    """Run ``g`` on ``inputs`` (internal NHWC layout).

    Returns the graph outputs by name, or every tensor's value when ``keep_all``. State
    tensors start from ``state`` and are left updated there; without one, every call starts
    from zero state (a freshly reset model).
    """
    if runs_stepwise(g):  # a learned skip gate decides per step
        if state is not None:
            raise TinycError(
                f"model {g.name!r} has a learned skip gate: carry its state over the streaming "
                "form (tinyc.passes.streaming.to_streaming), one step per call"
            )
        from tinyc.passes.streaming import run_stepwise

        return run_stepwise(g, inputs, keep_all)
    values: dict[str, np.ndarray] = {t.name: t.data for t in g.constants()}  # type: ignore[misc]
    values.update((state or State(g)).values)
    for name, x in zip(g.inputs, check_inputs(g, inputs), strict=True):
        values[name] = x
    for node in g.nodes:
        op = get_op(node.op)
        xs = [values[i] if i else None for i in node.inputs]
        guard = node.attrs.get("guard")  # a closed gate: held outputs (tinyc.ir.ops.skip)
        if guard and not values[guard].any():
            ys = held_outputs(node, g, xs)
        else:
            ys = op.evaluate(node, g, xs)
        for name, y in zip(node.outputs, ys, strict=True):
            if not name:
                continue
            t = g.tensors[name]
            y = np.asarray(y)
            if y.shape != t.shape or y.dtype != np_dtype(t.dtype):
                raise AssertionError(
                    f"{node.op} {node.name!r} produced {y.dtype}{list(y.shape)} for "
                    f"{t.dtype}{list(t.shape)}"
                )
            values[name] = y
    if keep_all:
        return values
    return {name: values[name] for name in g.outputs}
