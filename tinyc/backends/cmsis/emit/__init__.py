"""C emitters, one per op kind. Importing this package registers them all."""

from tinyc.backends.cmsis.emit import (  # noqa: F401
    cmsisnn,
    conv,
    division,
    elementwise,
    fused,
    index,
    lut,
    move,
    pool,
    prelu,
    quant,
    recurrent,
    softmax,
    svdf,
    table,
    transpose_conv,
)
from tinyc.backends.cmsis.emit.base import EMITTERS, Emitter, get_emitter

__all__ = ["EMITTERS", "Emitter", "get_emitter"]
