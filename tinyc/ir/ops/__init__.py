"""Op definitions. Importing this package registers every op kind."""

from tinyc.ir.ops import activation, conv, elementwise, pool, quant, reduce, shape  # noqa: F401
from tinyc.ir.ops.base import REGISTRY, OpDef, attr, get_op, register

__all__ = ["REGISTRY", "OpDef", "attr", "get_op", "register"]
