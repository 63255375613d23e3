"""Files kept under the data directory (photos, evidence): content-addressed, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_once(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically; an existing file with that content-derived name
    is already right, so it is left alone. A reader never sees half a file."""
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
