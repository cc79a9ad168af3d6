"""Decode CPUID leaves and feature MSRs into canonical feature names via the catalog.

Shared by the raw CPUID dump reader and the KVM probe, so a bit means the same thing
whichever way it was read.  The catalog's bits are decoded, and the CPUID bits only Linux
names (as ``linux:<name>``, facts its bug rules read); any other bit is simply not a
feature we can reason about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources

from cpusolve.encodings.catalog import catalog

REGISTERS = ("EAX", "EBX", "ECX", "EDX")
ARCH_CAPABILITIES = 0x10A
#: VMX capability MSRs (IA32_VMX_BASIC 0x480 .. IA32_VMX_VMFUNC 0x491): QEMU's vmx-* bits
#: index its own control words, not these MSRs' raw bit layout, so they are not decoded.
VMX_MSRS = range(0x480, 0x492)

Leaves = Mapping[tuple[int, int], tuple[int, int, int, int]]


@cache
def _cpuid_index() -> dict[tuple[int, int], list[tuple[int, int, str]]]:
    index: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
    for name, feat in catalog().features.items():
        if feat.cpuid is not None:
            leaf, sub, reg, bit = feat.cpuid
            index.setdefault((leaf, sub), []).append((REGISTERS.index(reg.upper()), bit, name))
    # CPUID bits only Linux names, where the bug or protection rules read them
    # (linux:tsa_fill_no, linux:btc_no...): facts about the host, never guest features.
    read = _rule_linux_bits()
    for name, (leaf, sub, reg, bit) in catalog().linux_cpuid_bits.items():
        if name in read:
            index.setdefault((leaf, sub), []).append((REGISTERS.index(reg.upper()), bit, name))
    return index


@cache
def _rule_linux_bits() -> frozenset[str]:
    data = resources.files("cpusolve.encodings") / "data"
    found: set[str] = set()
    for name in ("linux-6.1.json", "linux-6.12.json", "host-protection.json", "host-kernel-bits.json"):
        found |= set(re.findall(r'"(linux:[a-z0-9_]+)"', (data / name).read_text()))
    return frozenset(found)


@cache
def _msr_index() -> dict[int, list[tuple[int, str]]]:
    index: dict[int, list[tuple[int, str]]] = {}
    for name, feat in catalog().features.items():
        if feat.msr is not None and feat.msr[0] not in VMX_MSRS:
            index.setdefault(feat.msr[0], []).append((feat.msr[1], name))
    return index


def decodable_msrs() -> frozenset[int]:
    """MSR indices whose bits name catalog features (ARCH_CAPABILITIES, CORE_CAPABILITY...)."""
    return frozenset(_msr_index())


def decode_cpuid(leaves: Leaves) -> set[str]:
    """Feature names whose CPUID bit is set; ``leaves`` maps (leaf, subleaf) to registers."""
    out = set()
    for key, bits in _cpuid_index().items():
        regs = leaves.get(key)
        if regs is None:
            continue
        for reg, bit, name in bits:
            if regs[reg] >> bit & 1:
                out.add(name)
    return out


def decode_msrs(msrs: Mapping[int, int]) -> set[str]:
    """Feature names whose bit is set in a feature MSR value (``index -> 64-bit value``)."""
    out = set()
    for index, value in msrs.items():
        for bit, name in _msr_index().get(index, ()):
            if value >> bit & 1:
                out.add(name)
    return out


def max_leaf(leaves: Leaves, base: int) -> int:
    """The highest leaf a range (0, 0x80000000) reports, from its base leaf's EAX."""
    regs = leaves.get((base, 0))
    return regs[0] if regs else base - 1


def in_range(leaves: Leaves) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """Only the leaves the CPU claims to have: values beyond a range's max leaf are garbage."""
    out = {}
    for (leaf, sub), regs in leaves.items():
        base = leaf & 0xF0000000
        if base not in (0, 0x40000000, 0x80000000, 0xC0000000):
            continue
        if leaf <= max_leaf(leaves, base):
            out[(leaf, sub)] = regs
    return out
