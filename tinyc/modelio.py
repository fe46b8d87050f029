"""Model inputs and outputs at the boundary: .npy files, layouts, dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph


def to_internal(g: Graph, name: str, x: np.ndarray) -> np.ndarray:
    perm = g.external_perm.get(name)
    return x if perm is None else np.ascontiguousarray(np.transpose(x, np.argsort(perm)))


def to_external(g: Graph, name: str, x: np.ndarray) -> np.ndarray:
    perm = g.external_perm.get(name)
    return x if perm is None else np.ascontiguousarray(np.transpose(x, perm))


def external_shape(g: Graph, name: str) -> tuple[int, ...]:
    shape = g.tensors[name].shape
    perm = g.external_perm.get(name)
    return shape if perm is None else tuple(shape[p] for p in perm)


def read_npy(path: str | Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TinycError(f"no such file: {path}") from None
    except (ValueError, OSError, EOFError) as e:
        raise TinycError(f"{path} is not a readable .npy file ({e})") from None


def expected_input(g: Graph, name: str) -> str:
    """What input ``name`` takes, as error messages state it: dtype[shape] in the model
    file's layout, and the float alternative of a quantized input."""
    t = g.tensors[name]
    shape = list(external_shape(g, name))
    want = f"{t.dtype}{shape}"
    if t.dtype != "float32" and t.quant is not None:
        want += f" (or float32{shape}, quantized with the input's scale and zero point)"
    return want


def as_input_dtype(g: Graph, name: str, x: np.ndarray, what: str) -> np.ndarray:
    """Convert ``x`` to input ``name``'s dtype. Accepted: the input's own dtype; for a float
    input, any float array; for a quantized input, float data (real values, quantized with
    the input's own scale and zero point as TFLite's QUANTIZE does). Anything else (an int16
    file for an int8 input, integers for a float input) is refused."""
    from tinyc.ir.ops.quant import quantize_array

    t = g.tensors[name]
    if x.dtype == np.dtype(t.dtype):
        return x
    if np.issubdtype(x.dtype, np.floating):
        if t.dtype == "float32":
            return x.astype(np.float32)
        if t.quant is not None:
            return quantize_array(x, t.quant.s, t.quant.zp, t.dtype)
    raise TinycError(
        f"{what}: input {name!r} takes {expected_input(g, name)}; the file holds "
        f"{x.dtype}{list(x.shape)}"
    )


def sequence_shape(g: Graph, name: str) -> tuple[int, ...] | None:
    """A streaming step graph's input as a whole sequence (external layout), else None."""
    axis = g.stream.get("time_axis", {}).get(name) if g.stream else None
    if axis is None:
        return None
    shape = list(g.tensors[name].shape)
    shape[axis] = g.stream["steps"]
    perm = g.external_perm.get(name)
    return tuple(shape) if perm is None else tuple(shape[p] for p in perm)


def load_inputs(
    g: Graph, paths: list[str | Path], notes: list[str] | None = None
) -> list[np.ndarray]:
    """Read one .npy per graph input into internal layout. Each must have the input's shape
    in the model file's own layout (a streaming step graph also takes whole sequences) and
    its dtype, or float data for a quantized input, which is quantized with that input's
    parameters (said in ``notes``). Anything else is refused, saying what was expected."""
    if len(paths) != len(g.inputs):
        raise TinycError(f"the model takes {len(g.inputs)} input(s); {len(paths)} given")
    arrays = []
    for name, p in zip(g.inputs, paths, strict=True):
        x = read_npy(p)
        shapes = [external_shape(g, name), sequence_shape(g, name)]
        if x.shape not in shapes:
            raise TinycError(
                f"{p}: input {name!r} takes {expected_input(g, name)}; the file holds "
                f"{x.dtype}{list(x.shape)}"
            )
        t = g.tensors[name]
        if notes is not None and x.dtype != np.dtype(t.dtype) and t.quant is not None:
            notes.append(
                f"input {name!r}: {x.dtype} values quantized to {t.dtype} with scale "
                f"{float(t.quant.s):.6g}, zero point {t.quant.zp}"
            )
        arrays.append(to_internal(g, name, as_input_dtype(g, name, x, str(p))))
    return arrays


def random_inputs(g: Graph, seed: int) -> list[np.ndarray]:
    """Seeded random inputs in internal layout: uniform over the int range, N(0,1) floats."""
    rng = np.random.default_rng(seed)
    out = []
    for name in g.inputs:
        t = g.tensors[name]
        if t.dtype == "float32":
            out.append(rng.standard_normal(t.shape).astype(np.float32))
        else:
            info = np.iinfo(t.dtype)
            out.append(rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype))
    return out


def case_dirs(root: str | Path) -> list[Path]:
    """Case folders of a ``reference_io/<model>`` layout (each holds input_0.npy ...)."""
    root = Path(root)
    if not root.is_dir():
        raise TinycError(f"{root} is not a directory")
    if (root / "input_0.npy").exists():
        return [root]
    cases = sorted(p for p in root.iterdir() if (p / "input_0.npy").exists())
    if not cases:
        raise TinycError(f"{root} holds no case folders with input_0.npy")
    return cases


def case_inputs(case: Path) -> list[Path]:
    paths = []
    i = 0
    while (case / f"input_{i}.npy").exists():
        paths.append(case / f"input_{i}.npy")
        i += 1
    return paths
