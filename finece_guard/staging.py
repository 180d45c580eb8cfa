"""Folders written whole or not at all: build in a temporary sibling, then swap it in.

Used for everything the package writes as a folder a reader must never see half-written (the
converted default model, an adapter, an untrained LoRA): a crash or an error leaves the old
folder (or none) in place and no temporary folder behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_dir(target: Path, prefix: str) -> Iterator[Path]:
    """A fresh temporary folder beside ``target``; when the block succeeds it replaces ``target``.

    When the block raises, the temporary folder is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
