"""The one way cpusolve reads bytes it did not write: bounded, never blocking, one error line.

Every pool, fact, guests, libvirt and domain file goes through :func:`read_bytes` (a size
limit, only regular files: a FIFO nobody writes to, a device or ``/dev/zero`` is refused
before anything is read, opened without blocking), text through :func:`decode_text`, JSON
through :func:`parse_json` (duplicate keys refused, numbers too long to be one refused,
nesting bounded) and XML through :func:`parse_xml` (no DOCTYPE, checked on the decoded text,
so a UTF-16 file cannot hide one).  Names read from files are checked with
:func:`check_name` before they are written anywhere.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from cpusolve.errors import InputError

#: host fact files, guests files, libvirt XML: a CPUID dump is ~100 KiB, a QMP session less
MAX_BYTES = 16 * 1024 * 1024
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def read_bytes(path: str | Path, label: str, limit: int = MAX_BYTES, what: str = "a host fact file") -> bytes:
    """The whole of a regular file, at most ``limit`` bytes."""
    too_big = f"{label}: larger than {limit >> 20} MiB; not {what}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{label}: no such file" + (" (a dangling symlink)" if os.path.islink(path) else "")) \
            from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory, not {what}") from None
    except ValueError:  # a NUL byte in the path
        raise InputError(f"{label}: not a usable file name") from None
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise InputError(f"{label[:80]}...: file name too long") from None
        raise InputError(f"{label}: cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        for test, kind in _KINDS:
            if test(st.st_mode):
                raise InputError(f"{label}: is {kind}, not {what} (cpusolve reads regular files only)")
        if st.st_size > limit:
            raise InputError(too_big)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise InputError(f"{label}: cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # it grew while we read
        raise InputError(too_big)
    return data


def read_stream(stream, label: str, limit: int, what: str) -> str:
    """Text from a stream (stdin), at most ``limit`` characters."""
    text = stream.read(limit + 1)
    if len(text) > limit:
        raise InputError(f"{label}: larger than {limit >> 20} MiB; not {what}")
    return text


def decode_text(data: bytes, label: str, what: str = "a host fact file") -> str:
    """UTF-8 (or BOM-marked UTF-16) text; binary data is refused with its own message."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{label}: not {what} (undecodable UTF-16 text)") from None
    if b"\x00" in data:
        raise InputError(f"{label}: binary data, not {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{label}: binary data, not {what} (not UTF-8 text)") from None


def read_text(path: str | Path, label: str, limit: int = MAX_BYTES, what: str = "a host fact file") -> str:
    return decode_text(read_bytes(path, label, limit, what), label, what)


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def parse_json(text: str, label: str, what: str = "JSON") -> Any:
    """One JSON document; a key twice in one object (which would silently keep the last) is
    refused, like a number too long to be one."""
    value, end = parse_json_prefix(text, label, 0, what)
    rest = text[end:].strip()
    if rest:
        line = text.count("\n", 0, end) + 1
        raise InputError(f"{label}:{line}: malformed {what}: extra data after the document")
    return value


def parse_json_prefix(text: str, label: str, pos: int, what: str = "JSON") -> tuple[Any, int]:
    """The JSON document at ``pos`` and where it ends (QMP sessions are one after another)."""
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    try:
        return decoder.raw_decode(text, pos)
    except _DuplicateKey as e:
        raise InputError(f"{label}: duplicate key {str(e.args[0])[:60]!r} in one JSON object") from None
    except json.JSONDecodeError as e:
        kind = "truncated" if e.pos >= len(text.rstrip()) else "malformed"
        raise InputError(f"{label}:{e.lineno}:{e.colno}: {kind} {what}: {e.msg}") from None
    except ValueError as e:  # Python's limit on the digits of one integer
        raise InputError(f"{label}: malformed {what}: a number too long to be one ({str(e)[:60]})") from None
    except RecursionError:
        raise InputError(f"{label}: {what} nested too deeply") from None


def parse_xml(text: str, label: str, comments: bool = False) -> ET.Element:
    """Parse XML that has no DOCTYPE at all: no entity can be declared, none expanded.

    The check runs on the decoded text re-encoded as UTF-8 and the parser is told that
    encoding, so an ``encoding=`` declaration cannot smuggle a DOCTYPE past it.
    """
    raw = text.encode("utf-8")
    hit = _DOCTYPE.search(raw)
    if hit:
        kind = hit.group(1).decode().upper()
        raise InputError(f"{label}: XML with a <!{kind} ...> declaration refused "
                         f"(entity expansion and external entities are never processed)")
    # the declaration's own encoding= no longer applies to the re-encoded text
    raw = re.sub(rb"^\s*<\?xml[^>]*\?>", b"", raw, count=1)
    parser = ET.XMLParser(encoding="utf-8", target=ET.TreeBuilder(insert_comments=comments))
    try:
        parser.feed(raw)
        return parser.close()
    except ET.ParseError as e:
        line, col = e.position
        reason = str(e).split(":")[0]
        if "no element found" in reason or "unclosed token" in reason:
            raise InputError(f"{label}:{line}:{col}: truncated XML ({reason})") from None
        raise InputError(f"{label}:{line}:{col}: malformed XML ({reason})") from None


def read_xml(path: str | Path, label: str, what: str, comments: bool = False) -> ET.Element:
    return parse_xml(read_text(path, label, what=what), label, comments)


#: what a CPU model or feature name from a file may be: QEMU's and libvirt's names only use
#: these (a comma or '=' in one would smuggle flags or family= into a -cpu string)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def check_name(name: str, label: str, what: str) -> str:
    """A model or feature name as a name, or one error line."""
    value = name.strip()
    if not _NAME.match(value):
        shown = value[:40].encode("unicode_escape").decode()
        raise InputError(f"{label}: {what} {shown!r} is not a name (letters, digits, '.', '_', '-', '+')")
    return value


def is_printable_name(name: str) -> bool:
    """Host and guest names end up in configs and on terminals: no control characters."""
    return bool(name) and name.isprintable()


def is_directory(path: str | Path, label: str) -> bool:
    """Whether ``path`` is a directory; a name the system cannot even look up is an error."""
    try:
        return Path(path).is_dir()
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise InputError(f"{label[:80]}...: file name too long") from None
        raise InputError(f"{label}: cannot read: {e.strerror or e}") from None
    except ValueError:
        raise InputError(f"{label}: not a usable file name") from None
