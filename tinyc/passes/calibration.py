"""Calibration data: reading samples from files and observing every tensor's values.

Accepted forms (arrays in the model's own layout, e.g. NCHW for ONNX/PyTorch models):
- an ``.npz`` with one array per model input, keyed by input name, ``input_<i>`` or (single
  input) any one key; each array stacks samples on a leading axis (or is one sample);
- a folder of ``.npy`` files (single-input models), each one sample or a stack of samples;
- the ``reference_io`` layout: a folder of case folders holding ``input_<i>.npy`` (or one
  such case folder).

Calibration and held-out samples are drawn by a seeded shuffle (``split_samples``), never in
file order: files are often sorted, and their first samples cover part of the range only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinyc import interpreter
from tinyc.errors import TinycError
from tinyc.ir.graph import Graph
from tinyc.ir.ops.base import OpDef
from tinyc.modelio import case_dirs, case_inputs, external_shape, read_npy, to_internal
from tinyc.passes.observers import Histogram

Sample = list[np.ndarray]
"""One calibration sample: one array per graph input, internal layout."""


def _as_samples(arr: np.ndarray, shape: tuple[int, ...], what: str) -> list[np.ndarray]:
    """Split ``arr`` into samples of ``shape``: a stack on a leading axis or one sample."""
    size = int(np.prod(shape, dtype=np.int64))
    if arr.dtype.kind not in "fiub":
        raise TinycError(f"{what}: {arr.dtype} values cannot be model inputs")
    if arr.size == size:
        return [arr.reshape(shape)]
    stacked = tuple(arr.shape[1:]) == shape or (
        shape[:1] == (1,) and tuple(arr.shape[1:]) == shape[1:]
    )
    if arr.ndim >= 1 and stacked:
        return [a.reshape(shape) for a in arr]
    raise TinycError(
        f"{what}: shape {list(arr.shape)} is neither one sample of {list(shape)} nor a stack "
        "of them on a leading axis"
    )


def _internal(g: Graph, per_input: list[list[np.ndarray]]) -> list[Sample]:
    counts = {len(v) for v in per_input}
    if len(counts) != 1:
        raise TinycError(f"the model inputs have different sample counts {sorted(counts)}")
    samples = []
    for arrays in zip(*per_input, strict=True):
        sample = []
        for name, a in zip(g.inputs, arrays, strict=True):
            want = g.tensors[name].dtype
            sample.append(to_internal(g, name, a).astype(want, copy=False))
        samples.append(sample)
    return samples


def _from_npz(path: Path, g: Graph) -> list[Sample]:
    try:
        npz = np.load(path, allow_pickle=False)
        data = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError) as e:
        raise TinycError(f"{path} is not a readable .npz file ({e})") from None
    per_input = []
    for i, name in enumerate(g.inputs):
        if name in data:
            key = name
        elif f"input_{i}" in data:
            key = f"input_{i}"
        elif len(g.inputs) == 1 and len(data) == 1:
            key = next(iter(data))
        else:
            raise TinycError(
                f"{path}: no array for model input {name!r} (keys: {', '.join(data) or 'none'}; "
                f"use the input's name or input_{i})"
            )
        per_input.append(_as_samples(data[key], external_shape(g, name), f"{path}[{key}]"))
    return _internal(g, per_input)


def _from_cases(root: Path, g: Graph) -> list[Sample]:
    per_input: list[list[np.ndarray]] = [[] for _ in g.inputs]
    for case in case_dirs(root):
        files = case_inputs(case)
        if len(files) != len(g.inputs):
            raise TinycError(f"{case} holds {len(files)} inputs; the model takes {len(g.inputs)}")
        for i, (name, f) in enumerate(zip(g.inputs, files, strict=True)):
            per_input[i] += _as_samples(read_npy(f), external_shape(g, name), str(f))
    return _internal(g, per_input)


def _from_npy_folder(root: Path, g: Graph) -> list[Sample]:
    files = sorted(root.glob("*.npy"))
    if not files:
        raise TinycError(f"{root} holds no .npy files nor reference_io case folders")
    if len(g.inputs) != 1:
        raise TinycError(
            f"{root}: a folder of .npy files serves single-input models; this one takes "
            f"{len(g.inputs)} inputs (use an .npz or case folders with input_<i>.npy)"
        )
    shape = external_shape(g, g.inputs[0])
    return _internal(g, [[s for f in files for s in _as_samples(read_npy(f), shape, str(f))]])


def load_calibration(path: str | Path, graph: Graph, n: int | None = None) -> list[Sample]:
    """Read up to ``n`` calibration samples (all when None) for ``graph``'s inputs."""
    p = Path(path)
    if not p.exists():
        raise TinycError(f"no such calibration file or folder: {path}")
    if p.is_dir():
        has_cases = (p / "input_0.npy").exists() or any(
            (c / "input_0.npy").exists() for c in p.iterdir() if c.is_dir()
        )
        samples = _from_cases(p, graph) if has_cases else _from_npy_folder(p, graph)
    elif p.suffix.lower() == ".npz":
        samples = _from_npz(p, graph)
    elif p.suffix.lower() == ".npy":
        if len(graph.inputs) != 1:
            raise TinycError(f"{p}: one .npy serves single-input models only")
        shape = external_shape(graph, graph.inputs[0])
        samples = _internal(graph, [_as_samples(read_npy(p), shape, str(p))])
    else:
        raise TinycError(f"{p}: calibration data must be an .npz, .npy or a folder")
    if not samples:
        raise TinycError(f"{path} holds no calibration samples")
    return samples if n is None else shuffled(samples)[:n]


SHUFFLE_SEED = 0
"""Seed of the draw: the same file always gives the same calibration and held-out sets."""


def shuffled(samples: list[Sample], seed: int = SHUFFLE_SEED) -> list[Sample]:
    """``samples`` in a seeded random order: files are often sorted (by class, by time, by
    value), and the first N of a sorted file cover only part of the inputs' range."""
    order = np.random.default_rng(seed).permutation(len(samples))
    return [samples[i] for i in order]


def split_samples(
    samples: list[Sample], n_cal: int | None, n_eval: int, default_cal: int
) -> tuple[list[Sample], list[Sample]]:
    """Draw disjoint calibration and held-out sets from ``samples`` by a seeded shuffle.

    ``n_cal`` given: that many for calibration (fewer if the data is short), up to
    ``n_eval`` of the rest held out. ``n_cal`` None: ``default_cal`` for calibration, but a
    short file still keeps a fifth of its samples (up to ``n_eval``) apart for evaluation.
    """
    data = shuffled(samples)
    total = len(data)
    if n_cal is None:
        n_held = min(n_eval, max(total - default_cal, total // 5))
        n_cal = min(default_cal, total - n_held)
    n_cal = min(n_cal, total)
    n_held = min(n_eval, total - n_cal)
    return data[:n_cal], data[n_cal : n_cal + n_held]


def synthetic_calibration(graph: Graph, n: int, seed: int = 0) -> list[Sample]:
    """Standard-normal samples: only for trying the flow, the ranges will not fit real data."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        sample = []
        for name in graph.inputs:
            t = graph.tensors[name]
            sample.append(rng.standard_normal(t.shape).astype(t.dtype))
        out.append(sample)
    return out


Progress = Callable[[int], None]
"""Called with the number of samples just processed."""


def observe(
    g: Graph, samples: list[Sample], progress: Progress | None = None
) -> dict[str, Histogram]:
    """Run the float graph on every sample and histogram every activation tensor."""
    from tinyc.ir.ops import get_op

    hists = {t.name: Histogram() for t in g.activations() if t.dtype == "float32"}
    tensors = list(hists.items())
    for sample in samples:
        values = interpreter.run(g, sample, keep_all=True)
        for name, h in tensors:
            h.update(values[name])
        for node in g.nodes:
            op = get_op(node.op)
            if type(op).internals is not OpDef.internals:
                xs = [values[i] if i else None for i in node.inputs]
                for key, v in op.internals(node, g, xs).items():
                    hists.setdefault(f"{node.name}#{key}", Histogram()).update(v)
        if progress is not None:
            progress(1)
    return hists
