"""Write all or nothing: a failed run never leaves half a config or fact file behind."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from cpusolve.errors import InputError


def write_atomic(text: str, output: str | Path | None) -> None:
    """``text`` to ``output`` via a temporary file and rename; None or '-' is stdout."""
    if output in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    except (OSError, ValueError) as e:
        raise InputError(f"{output}: cannot write: {getattr(e, 'strerror', None) or e}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
