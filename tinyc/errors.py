"""The one exception type that reaches users as a ``tinyc: error: ...`` line."""


class TinycError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


class UnsupportedError(TinycError):
    """The model uses operators or features tinyc does not implement."""
