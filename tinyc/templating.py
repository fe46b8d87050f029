"""The jinja2 environment of tinyc's project templates (package data under tinyc/templates)."""

from __future__ import annotations

import functools

import jinja2


@functools.cache
def template_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tinyc", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
