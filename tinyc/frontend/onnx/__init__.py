"""ONNX frontend: float, QDQ-quantized and QOperator-quantized (onnxruntime's QLinear* ops,
com.microsoft ones included) ONNX models (opsets 7-21) -> Graph (NHWC inside).

``load_onnx`` reads and checks the file, runs ONNX shape inference, folds constant
subgraphs, translates each node (layouts tracked per tensor so NCHW <-> NHWC transposes
only appear where data really moves; a QOperator node as the dequantize - float op -
quantize island it stands for, see ``ops_qlinear``), then runs the cleanup passes: layout
simplification, Mul/Add folding into convolutions, activation fusion, Q/DQ fusion into
int8 ops, Kronecker-factored layers (``tinyc.torch.KroneckerLinear``'s exported
Reshape -> MatMul -> MatMul -> ReduceSum pattern, see ``tinyc.passes.fuse_kronecker``) as
KRONECKER_FC, and folding the flatten transpose into fully connected weights.
"""

from __future__ import annotations

from pathlib import Path

from tinyc.frontend.onnx.convert import convert
from tinyc.frontend.onnx.reader import read_onnx
from tinyc.ir.graph import Graph
from tinyc.ir.verify import verify
from tinyc.passes import run_pipeline
from tinyc.passes.fold_affine import fold_affine
from tinyc.passes.fold_constants import fold_constants
from tinyc.passes.fold_transpose_fc import fold_transpose_fc
from tinyc.passes.fuse_activations import fuse_activations
from tinyc.passes.fuse_kronecker import fuse_kronecker
from tinyc.passes.fuse_qdq import fuse_qdq
from tinyc.passes.prune_outputs import prune_outputs
from tinyc.passes.simplify_layout import simplify_layout

PIPELINE = [
    prune_outputs,
    simplify_layout,
    fold_affine,
    fuse_activations,
    fuse_qdq,
    fold_constants,
    fuse_kronecker,
    fold_transpose_fc,
    simplify_layout,
]


def load_onnx(source: str | Path | bytes, name: str | None = None, optimize: bool = True) -> Graph:
    """Read an ONNX model into a verified Graph.

    ``optimize=False`` returns the direct translation (Q/DQ nodes kept, nothing fused).
    """
    om = read_onnx(source)
    if name is None:
        name = Path(source).stem if not isinstance(source, bytes | bytearray) else "model"
    g = convert(om, name)
    verify(g)
    if optimize:
        g = run_pipeline(g, PIPELINE)
        verify(g)
    return g


__all__ = ["load_onnx"]
