"""C emitters, one per op kind. Importing this package registers them all."""

from tinyc.backends.cmsis.emit import (  # noqa: F401
    batch_matmul,
    binary,
    broadcast,
    cmsisnn,
    conv,
    division,
    elementwise,
    erf_gelu,
    fused,
    index,
    kronecker,
    lut,
    move,
    normalize,
    pointwise,
    pool,
    prelu,
    quant,
    rearrange,
    recurrent,
    reductions,
    resize,
    skip,
    softmax,
    svdf,
    table,
    transpose_conv,
)
from tinyc.backends.cmsis.emit.base import EMITTERS, Emitter, get_emitter

__all__ = ["EMITTERS", "Emitter", "get_emitter"]
