"""What every fact-file reader shares: bounded reading, safe XML, feature-name folding.

Fact files come from other machines and other people, so a reader trusts nothing: it reads
at most ``MAX_BYTES``, refuses any XML DOCTYPE (the door to entity expansion and external
entities) before a parser sees the text, and turns every problem into one
:class:`InputError` line that names the file.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from cpusolve.encodings import spelling as spellings
from cpusolve.encodings.catalog import catalog
from cpusolve.errors import InputError

MAX_BYTES = 16 * 1024 * 1024
#: Architectures whose fact files we recognise only to refuse them by name.
FOREIGN_ARCHES = ("aarch64", "armv7l", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64")
X86_ARCHES = ("x86_64", "x86", "i686", "amd64")
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)


def warn(message: str) -> None:
    print(f"cpusolve: warning: {message}", file=sys.stderr)


def read_bytes(path: Path, label: str, limit: int = MAX_BYTES, what: str = "a host fact file") -> bytes:
    """The whole file, refusing anything over ``limit`` bytes, devices and FIFOs included."""
    too_big = f"{label}: larger than {limit >> 20} MiB; not {what}"
    try:
        if path.stat().st_size > limit:
            raise InputError(too_big)
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory") from None
    except ValueError:  # e.g. a NUL byte in the path
        raise InputError(f"{label}: not a usable file name") from None
    except OSError as e:
        raise InputError(f"{label}: cannot read: {e.strerror or e}") from None
    if len(data) > limit:  # grew while we looked, or a device / FIFO with no size
        raise InputError(too_big)
    return data


def decode_text(data: bytes, label: str) -> str:
    """UTF-8 (or BOM-marked UTF-16) text; binary data is refused with its own message."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{label}: not a host fact file (undecodable UTF-16 text)") from None
    if b"\x00" in data:
        raise InputError(f"{label}: binary data, not a host fact file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{label}: binary data, not a host fact file (not UTF-8 text)") from None


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


def check_arch(arch: str | None, label: str, what: str) -> None:
    """Refuse a fact file of another architecture, by name."""
    if arch is None:
        return
    a = arch.strip()
    if a in X86_ARCHES:
        return
    raise InputError(f"{label}: {what} for architecture '{a}'; cpusolve models x86_64 hosts only")


class FeatureNames:
    """Fold one file's feature spellings to canonical QEMU names.

    Unknown spellings are not an error (libvirt and Linux grow names faster than the
    catalog): each is reported once per file on stderr and ignored.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.cat = catalog()
        self.unknown: list[str] = []

    def one(self, spelling: str) -> str | None:
        name = self.cat.canonical(spelling)
        if name is None:
            self.report(spelling)
        return name

    def many(self, spellings: Iterable[str]) -> set[str]:
        out = set()
        for s in spellings:
            name = self.one(s)
            if name is not None:
                out.add(name)
        return out

    def report(self, spelling: str) -> None:
        if spelling in spellings.not_model_features():
            return
        if spelling not in self.unknown:
            self.unknown.append(spelling)
            warn(f"{self.label}: unknown feature '{spelling}' ignored")


def int_attr(elem: ET.Element, key: str, label: str, base: int = 0) -> int:
    """An integer attribute (hex with 0x, or decimal), or one InputError line."""
    value = elem.get(key)
    if value is None:
        raise InputError(f"{label}: <{elem.tag}> has no '{key}' attribute")
    try:
        return int(value, base)
    except ValueError:
        raise InputError(f"{label}: <{elem.tag} {key}='{value[:40]}'> is not a number") from None


def cpuid_signature(eax: int) -> tuple[int, int, int]:
    """Family, model, stepping from CPUID leaf 1 EAX, the way Linux computes them.

    Linux ``x86_family()``/``x86_model()`` (arch/x86/lib/cpu.c): the extended family is added
    when the base family is 0xf, the extended model when the family is 6 or more.
    """
    stepping = eax & 0xF
    family = (eax >> 8) & 0xF
    model = (eax >> 4) & 0xF
    if family == 0xF:
        family += (eax >> 20) & 0xFF
    if family >= 0x6:
        model += ((eax >> 16) & 0xF) << 4
    return family, model, stepping


def vendor_string(ebx: int, ecx: int, edx: int) -> str:
    """The 12-character CPUID vendor string from leaf 0 (EBX, EDX, ECX order)."""
    raw = b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx))
    return raw.decode("latin-1")
