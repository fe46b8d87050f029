"""What a ``--kernels cmsis-nn`` project adds to the C backend's: the build of CMSIS-NN
(``lib/cmsis_nn.mk`` for the Makefile, ``lib/cmsis_nn.cmake`` for CMake, which the project
templates include), its manifest entry, and the compile report's note."""

from __future__ import annotations

from typing import Any

from tinyc import __version__
from tinyc.backends import cmsis_nn
from tinyc.ir.graph import Graph
from tinyc.templating import template_env

LIBRARY_FILES = {
    "lib/cmsis_nn.mk": "build/cmsis_nn.mk.j2",
    "lib/cmsis_nn.cmake": "build/cmsis_nn.cmake.j2",
}


def library_files(url: str = cmsis_nn.URL, md5: str = cmsis_nn.URL_MD5) -> dict[str, str]:
    """The CMSIS-NN build fragments, keyed by their path in the project; the CMake build
    fetches the pinned CMSIS-NN from ``url`` (an archive with that MD5) when CMSIS_NN_DIR is
    unset."""
    ctx = {"version": __version__, "commit": cmsis_nn.COMMIT, "url": url, "md5": md5}
    env = template_env()
    return {rel: env.get_template(t).render(**ctx) for rel, t in LIBRARY_FILES.items()}


def fetched_library() -> dict[str, str]:
    """How the project's CI workflow gets CMSIS-NN (see tinyc.emulate.render_project)."""
    return {
        "name": f"CMSIS-NN {cmsis_nn.COMMIT[:12]}",
        "env": "CMSIS_NN_DIR",
        "url": cmsis_nn.URL,
        "md5": cmsis_nn.URL_MD5,
    }


def manifest_entry() -> dict[str, Any]:
    return {"commit": cmsis_nn.COMMIT, "url": cmsis_nn.URL, "md5": cmsis_nn.URL_MD5}


def coverage_note(g: Graph) -> str:
    """Which layers CMSIS-NN runs and which tinyc's kernels run (``g`` as generated)."""
    from tinyc.backends.cmsis.emit.cmsisnn import runs_on_cmsis_nn

    ours: dict[str, int] = {}
    on_nn = 0
    for node in g.nodes:
        if runs_on_cmsis_nn(node, g):
            on_nn += 1
        else:
            ours[node.op] = ours.get(node.op, 0) + 1
    rest = ", ".join(f"{op} x{n}" for op, n in sorted(ours.items()))
    note = f"CMSIS-NN {cmsis_nn.COMMIT[:12]} runs {on_nn} of {len(g.nodes)} layers"
    return note + (f"; tinyc's kernels run {rest}" if rest else "")
