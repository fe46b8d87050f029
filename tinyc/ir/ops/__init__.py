"""Op definitions. Importing this package registers every op kind."""

from tinyc.ir.ops import (  # noqa: F401
    activation,
    batch_matmul,
    binary,
    broadcast,
    conv,
    division,
    elementwise,
    erf_gelu,
    kronecker,
    lookup,
    normalize,
    pool,
    prelu,
    quant,
    rearrange,
    recurrent,
    reduce,
    reductions,
    resize,
    shape,
    skip,
    slicing,
    svdf,
    table,
    transpose_conv,
    unary,
    unsupported,
    variables,
)
from tinyc.ir.ops.base import REGISTRY, OpDef, attr, get_op, register

__all__ = ["REGISTRY", "OpDef", "attr", "get_op", "register"]
