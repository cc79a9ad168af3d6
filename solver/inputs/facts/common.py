"""What every fact-file reader shares: bounded reading, safe XML, feature-name folding.

Fact files come from other machines and other people, so a reader trusts nothing: bytes,
text, JSON and XML come through :mod:`cpusolve.inputs.untrusted` (bounded, non-blocking, no
DOCTYPE), and every problem is one :class:`InputError` line that names the file.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from cpusolve.encodings import spelling as spellings
from cpusolve.encodings.catalog import catalog
from cpusolve.errors import InputError, one_line
from cpusolve.inputs.untrusted import MAX_BYTES, decode_text, parse_xml, read_bytes  # noqa: F401 (the readers' API)

#: Architectures whose fact files we recognise only to refuse them by name.
FOREIGN_ARCHES = ("aarch64", "armv7l", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64")
X86_ARCHES = ("x86_64", "x86", "i686", "amd64")


def warn(message: str) -> None:
    print(f"cpusolve: warning: {one_line(message)}", file=sys.stderr)


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

    #: unknown spellings named one per line; the rest of a file's are counted in one line
    SHOWN = 20

    def __init__(self, label: str) -> None:
        self.label = label
        self.cat = catalog()
        self.unknown: dict[str, None] = {}
        self.more = 0

    def one(self, spelling: str) -> str | None:
        name = self.cat.canonical(spelling)
        if name is None:
            # a CPUID bit only Linux names (linux:amd_ibpb_ret), as the probe writes it
            name = self.cat.linux_cpuid_only.get(spelling)
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
        if spelling in self.unknown:
            return
        self.unknown[spelling] = None
        if len(self.unknown) <= self.SHOWN:
            warn(f"{self.label}: unknown feature {spelling[:60]!r} ignored")
        elif len(self.unknown) == self.SHOWN + 1:
            warn(f"{self.label}: more unknown features ignored (not named one by one)")


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
