"""Atomic output directories: written in full beside the target, then renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tinyc.errors import TinycError


def check_writable_target(path: Path, force: bool) -> None:
    if path.exists() and not path.is_dir():
        raise TinycError(f"{path} exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not force:
        raise TinycError(f"{path} already exists and is not empty (use --force to replace it)")


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path`` in one rename.

    On any error the temporary directory is removed and ``path`` is left untouched.
    """
    path = Path(path)
    check_writable_target(path, force)
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TinycError(f"cannot create {parent}: {e.strerror}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=parent))
            os.rename(path, old / "x")
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
