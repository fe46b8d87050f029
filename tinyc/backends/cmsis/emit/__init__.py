"""C emitters, one per op kind. Importing this package registers them all."""

from tinyc.backends.cmsis.emit import conv, elementwise, lut, move, pool, quant, softmax  # noqa: F401
from tinyc.backends.cmsis.emit.base import EMITTERS, Emitter, get_emitter

__all__ = ["EMITTERS", "Emitter", "get_emitter"]
