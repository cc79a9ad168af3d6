"""Linux ``/proc/cpuinfo`` plus ``/sys/devices/system/cpu/vulnerabilities/``.

cpuinfo gives the identity (vendor_id, cpu family, model, stepping) and the flags the
kernel sees on the silicon (not what KVM exposes: ``exposable`` is False).  The sysfs
directory is the only place the kernel states its bug verdicts; a file there that does not
read "Not affected" is a bug the host has.  Give a directory holding ``cpuinfo`` and a
``vulnerabilities/`` copy to get both; a bare cpuinfo file has ``bugs=None``.
"""

from __future__ import annotations

import re
from pathlib import Path

from cpusolve.errors import InputError
from cpusolve.inputs.facts.common import FeatureNames, decode_text, read_bytes, warn
from cpusolve.inputs.facts.linux_flags import features_from_flags

FORMAT = "linux-cpuinfo"
_FIELD = re.compile(r"^([^:\n]+?)\s*:\s?(.*)$")
_FOREIGN = (
    ("aarch64", re.compile(r"^(CPU implementer|CPU architecture)\s*:", re.MULTILINE)),
    ("s390x", re.compile(r"^vendor_id\s*:\s*IBM/S390", re.MULTILINE)),
    ("ppc64", re.compile(r"^cpu\s*:\s*POWER|^platform\s*:\s*(pSeries|PowerNV)", re.MULTILINE)),
    ("riscv64", re.compile(r"^isa\s*:\s*rv", re.MULTILINE)),
    ("loongarch64", re.compile(r"^CPU Family\s*:\s*Loongson", re.MULTILINE)),
)


def foreign_arch(text: str) -> str | None:
    """The architecture of a non-x86 /proc/cpuinfo, to refuse it by name."""
    for arch, pattern in _FOREIGN:
        if pattern.search(text):
            return arch
    return None


def processors(text: str) -> list[dict[str, str]]:
    """One dict of ``field -> value`` per processor block."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        m = _FIELD.match(line)
        if m:
            current.setdefault(m.group(1).strip(), m.group(2).strip())
    if current:
        blocks.append(current)
    return [b for b in blocks if "flags" in b or "vendor_id" in b]


def identity(block: dict[str, str], label: str) -> tuple[str, int, int, int, list[str]]:
    """vendor, family, model, stepping (and notes) of one processor block."""
    notes = []
    vendor = block.get("vendor_id")
    if not vendor:
        raise InputError(f"{label}: cpuinfo without a vendor_id line")
    values = []
    for key in ("cpu family", "model", "stepping"):
        raw = block.get(key)
        if raw is None or (key == "stepping" and not raw.isdigit()):
            if key != "stepping":
                raise InputError(f"{label}: cpuinfo without a '{key}' line")
            notes.append(f"stepping '{raw}' unknown, 0 assumed")
            raw = "0"
        try:
            values.append(int(raw))
        except ValueError:
            raise InputError(f"{label}: cpuinfo '{key}' is '{raw[:20]}', not a number") from None
    if "model name" in block:
        notes.append(f"model name {block['model name']}")
    if "microcode" in block:
        notes.append(f"microcode {block['microcode']}")
    return vendor, values[0], values[1], values[2], notes


def read_text(text: str, label: str, bugs: frozenset[str] | None) -> dict:
    blocks = processors(text)
    if not blocks:
        raise InputError(f"{label}: cpuinfo without a processor block")
    vendor, family, model, stepping, notes = identity(blocks[0], label)
    # Every CPU must offer a flag for the host to: intersect (hybrid parts can differ).
    flag_sets = [set(b.get("flags", "").split()) for b in blocks if "flags" in b]
    if not flag_sets or not flag_sets[0]:
        raise InputError(f"{label}: cpuinfo without a flags line")
    flags = set.intersection(*flag_sets)
    names = FeatureNames(label)
    features = features_from_flags(sorted(flags), vendor, names)
    if bugs is None:
        notes.append("no sysfs vulnerabilities given: bugs unknown")
    return dict(vendor=vendor, family=family, model=model, stepping=stepping, features=features,
                bugs=bugs, exposable=False, notes=tuple(notes))


def read_vulnerabilities(directory: Path, label: str) -> frozenset[str]:
    """Names of the bugs the kernel reports as anything but "Not affected" or "Unknown".

    "Unknown: ..." (mmio_stale_data on parts out of Intel's servicing period, a guest's
    view) says the kernel cannot tell: it is reported and Linux's rules decide, never taken
    as the bug nor as its absence.
    """
    bugs = set()
    unknown = []
    try:
        entries = sorted(directory.iterdir())
    except OSError as e:
        raise InputError(f"{label}: cannot read {directory}: {e.strerror or e}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        # a FIFO, a device or a dangling symlink here is refused, never skipped: a skipped
        # file would be a bug the host silently does not have
        where = f"{label}/{entry.name}"
        verdict = decode_text(read_bytes(entry, where, what="a sysfs vulnerability file"), where).strip()
        if verdict.startswith("Unknown"):
            unknown.append(f"{entry.name} ({verdict.splitlines()[0][:80]!r})")
        elif verdict != "Not affected":
            bugs.add(entry.name)
    if unknown:
        warn(f"{label}: the kernel cannot tell {', '.join(unknown)}; Linux's rules decide")
    return frozenset(bugs)


def read_dir(directory: Path, label: str) -> dict:
    """A directory holding ``cpuinfo`` and (normally) ``vulnerabilities/``."""
    cpuinfo = directory / "cpuinfo"
    if not cpuinfo.is_file():
        raise InputError(f"{label}: directory without a 'cpuinfo' file (expected cpuinfo and "
                         f"vulnerabilities/ copied from /proc and /sys/devices/system/cpu)")
    text = decode_text(read_bytes(cpuinfo, f"{label}/cpuinfo"), f"{label}/cpuinfo")
    arch = foreign_arch(text)
    if arch:
        raise InputError(f"{label}/cpuinfo: /proc/cpuinfo of an {arch} machine; "
                         f"cpusolve models x86_64 hosts only")
    vulns = directory / "vulnerabilities"
    bugs = read_vulnerabilities(vulns, f"{label}/vulnerabilities") if vulns.is_dir() else None
    return read_text(text, label, bugs)
