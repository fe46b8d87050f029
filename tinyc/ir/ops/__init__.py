"""Op definitions. Importing this package registers every op kind."""

from tinyc.ir.ops import (  # noqa: F401
    activation,
    conv,
    division,
    elementwise,
    pool,
    prelu,
    quant,
    recurrent,
    reduce,
    shape,
    slicing,
    svdf,
    table,
    transpose_conv,
    unsupported,
)
from tinyc.ir.ops.base import REGISTRY, OpDef, attr, get_op, register

__all__ = ["REGISTRY", "OpDef", "attr", "get_op", "register"]
