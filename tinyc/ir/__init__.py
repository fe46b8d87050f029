"""tinyc's intermediate representation: one Graph type for float and quantized models."""

from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import QuantParams, Tensor

__all__ = ["Graph", "Node", "QuantParams", "Tensor"]
