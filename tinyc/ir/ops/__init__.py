"""Op definitions. Importing this package registers every op kind."""

from tinyc.ir.ops import (  # noqa: F401
    activation,
    conv,
    elementwise,
    pool,
    quant,
    recurrent,
    reduce,
    shape,
)
from tinyc.ir.ops.base import REGISTRY, OpDef, attr, get_op, register

__all__ = ["REGISTRY", "OpDef", "attr", "get_op", "register"]
