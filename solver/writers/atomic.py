"""Write all or nothing: a failed or interrupted run never leaves half a file behind.

The text goes to a temporary file beside the target, is flushed to disk and renamed over
it, so a reader sees the old file or the whole new one, never a part.  The new file gets
the mode a plain write would give it (the old file's, else 0666 less the umask), not the
temporary file's 0600.  A target that is a directory or a special file (a device, a FIFO) is
refused: renaming over it would replace a device node with a regular file.  SIGINT and
SIGTERM during the write remove the temporary file (:func:`discard_temporaries`, which the
command's signal handler calls before it exits).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from cpusolve.errors import InputError

#: temporary files being written, for a signal handler to remove
_PENDING: set[str] = set()


def discard_temporaries() -> None:
    for tmp in list(_PENDING):
        try:
            os.unlink(tmp)
        except OSError:
            pass
    _PENDING.clear()


def write_atomic(text: str, output: str | Path | None) -> None:
    """``text`` to ``output`` via a temporary file and rename; None or '-' is stdout."""
    write_all_atomic([(text, output)])


def write_all_atomic(items: list[tuple[str, str | Path | None]]) -> None:
    """Each ``(text, output)``: every file is written to its temporary first, and only
    when all of them are on disk are they renamed into place (then stdout is written), so
    an output that cannot be written (``split --write-pool F -o BAD``) leaves every other
    one as it was.  (A rename that fails after every temporary was written, which the
    checks before it make rare, leaves the files renamed before it in place.)"""
    staged: list[tuple[str, Path, str]] = []
    try:
        for text, output in items:
            if output not in (None, "-"):
                staged.append((*_stage(text, output), str(output)))
        for tmp, target, output in staged:
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise InputError(f"{output}: cannot write: {e.strerror or e}") from None
            _PENDING.discard(tmp)
    except BaseException:
        for tmp, _, _ in staged:
            Path(tmp).unlink(missing_ok=True)
            _PENDING.discard(tmp)
        raise
    for text, output in items:
        if output in (None, "-"):
            sys.stdout.write(text)
            sys.stdout.flush()


def _stage(text: str, output: str | Path) -> tuple[str, Path]:
    """``text`` in a temporary file beside ``output``, flushed to disk with the mode the
    target should have: (temporary path, target)."""
    target = Path(output)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise InputError(f"{output}: cannot write: {e.strerror or e}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InputError(f"{output}: is a directory; name the file to write")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError(f"{output}: not a regular file; write to stdout and redirect instead")
    if st is not None:
        mode = stat.S_IMODE(st.st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except (OSError, ValueError) as e:
        raise InputError(f"{output}: cannot write: {getattr(e, 'strerror', None) or e}") from None
    _PENDING.add(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        _PENDING.discard(tmp)
        if isinstance(e, OSError):
            raise InputError(f"{output}: cannot write: {e.strerror or e}") from None
        raise
    return tmp, target
