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


def as_input_dtype(g: Graph, name: str, x: np.ndarray, what: str) -> np.ndarray:
    """Convert ``x`` to input ``name``'s dtype: float data for a quantized input is
    quantized with the input's own scale and zero point (as TFLite's QUANTIZE does);
    integer data must fit the input's range."""
    from tinyc.ir.ops.quant import quantize_array

    t = g.tensors[name]
    if x.dtype == np.dtype(t.dtype):
        return x
    if np.issubdtype(x.dtype, np.floating):
        if t.dtype == "float32":
            return x.astype(np.float32)
        if t.quant is None:
            raise TinycError(f"{what}: input {name!r} takes {t.dtype} values, not floats")
        return quantize_array(x, t.quant.s, t.quant.zp, t.dtype)
    if np.issubdtype(x.dtype, np.integer) and t.dtype != "float32":
        info = np.iinfo(t.dtype)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise TinycError(f"{what}: values outside the {t.dtype} range of input {name!r}")
        return x.astype(t.dtype)
    raise TinycError(f"{what}: input {name!r} takes {t.dtype} values, the file holds {x.dtype}")


def sequence_shape(g: Graph, name: str) -> tuple[int, ...] | None:
    """A streaming step graph's input as a whole sequence (external layout), else None."""
    axis = g.stream.get("time_axis", {}).get(name) if g.stream else None
    if axis is None:
        return None
    shape = list(g.tensors[name].shape)
    shape[axis] = g.stream["steps"]
    perm = g.external_perm.get(name)
    return tuple(shape) if perm is None else tuple(shape[p] for p in perm)


def load_inputs(g: Graph, paths: list[str | Path]) -> list[np.ndarray]:
    """Read one .npy per graph input (in the model's own layout) into internal layout.

    Float data for a quantized input is quantized with that input's parameters. A
    streaming step graph (Graph.stream) also takes whole sequences."""
    if len(paths) != len(g.inputs):
        raise TinycError(f"the model takes {len(g.inputs)} input(s); {len(paths)} given")
    arrays = []
    for name, p in zip(g.inputs, paths, strict=True):
        x = read_npy(p)
        want = external_shape(g, name)
        if x.shape == sequence_shape(g, name):
            want = x.shape
        if x.shape != want:
            if x.size != int(np.prod(want)):
                raise TinycError(
                    f"{p}: input {name!r} needs shape {list(want)}, the file holds {list(x.shape)}"
                )
            x = x.reshape(want)
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
