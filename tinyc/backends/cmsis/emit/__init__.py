"""C emitters, one per op kind. Importing this package registers them all."""

from tinyc.backends.cmsis.emit import (  # noqa: F401
    cmsisnn,
    conv,
    elementwise,
    fused,
    lut,
    move,
    pool,
    quant,
    recurrent,
    softmax,
)
from tinyc.backends.cmsis.emit.base import EMITTERS, Emitter, get_emitter

__all__ = ["EMITTERS", "Emitter", "get_emitter"]
