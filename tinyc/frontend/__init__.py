"""Frontends: each turns a model file into a Graph, nothing else."""

from __future__ import annotations

from pathlib import Path

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph


def load_model(spec: str | Path) -> Graph:
    """Load ``spec`` by its form: ``.tflite``, ``.onnx``, ``.pt2``, ``file.py:factory`` or a
    project directory made by ``tinyc compile``."""
    spec = str(spec)
    path = Path(spec)
    if ":" in spec and not path.exists() and spec.rsplit(":", 1)[0].endswith(".py"):
        from tinyc.frontend.torch import load_torch_factory

        return load_torch_factory(spec)
    if not path.exists():
        raise TinycError(f"no such file: {spec}")
    if path.is_dir():
        from tinyc.project import load_project_graph

        return load_project_graph(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from tinyc.frontend.tflite import load_tflite

        return load_tflite(path)
    if suffix == ".onnx":
        from tinyc.frontend.onnx import load_onnx

        return load_onnx(path)
    if suffix == ".pt2":
        from tinyc.frontend.torch import load_exported_program

        return load_exported_program(path)
    raise TinycError(
        f"{spec}: unknown model format {suffix or '(no extension)'!r}; tinyc reads .tflite, "
        ".onnx, .pt2, file.py:factory or a compiled project directory"
    )
