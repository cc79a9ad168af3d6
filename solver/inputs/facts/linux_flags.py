"""Linux ``/proc/cpuinfo`` flags -> canonical QEMU feature names: the one place that knows how.

When the catalog carries Linux spellings (``encodings/data/linux-cpufeatures.json`` imported
into ``Feature.linux``), :meth:`Catalog.from_linux_flags` does the work; without them this
module folds spellings itself (a test checks both give the same answer).  Either way the
synthetic speculation flags (``ibpb``, ``stibp``, ``ssbd``...) are resolved here by vendor:
Linux hides the vendor CPUID bits behind them, and the catalog alone cannot tell which bit
was meant.  Ambiguous ones claim nothing: missing a bit the host has is safe, claiming one
it lacks is not.
"""

from __future__ import annotations

from collections.abc import Iterable

from cpusolve.encodings import spelling as tables
from cpusolve.encodings.catalog import catalog
from cpusolve.inputs.facts.common import FeatureNames


def linux_data_present() -> bool:
    """True once the catalog has been imported with Linux spellings."""
    return any(f.linux for f in catalog().features.values())


def features_from_flags(flags: Iterable[str], vendor: str, names: FeatureNames) -> frozenset[str]:
    """Canonical QEMU names for the CPUID bits behind a cpuinfo ``flags`` line."""
    cat = catalog()
    flags = sorted(set(flags))
    # Linux hides the vendor CPUID bits behind these (AMD_IBPB, SPEC_CTRL, INTEL_STIBP...
    # have no cpuinfo name) and shows one synthetic flag instead: the vendor says which bit.
    per_vendor = tables.linux_per_vendor()
    out = {per_vendor[f].get(vendor) for f in flags if f in per_vendor} - {None}
    rest = [f for f in flags if f not in per_vendor]
    if linux_data_present():
        out |= cat.from_linux_flags(rest)
        for flag in rest:
            if cat.canonical(flag) is None and flag not in tables.linux_software() and not _known_linux(flag):
                names.report(flag)
    else:
        for flag in rest:
            name = _fold(flag)
            if name is not None:
                out.add(name)
            elif flag not in tables.linux_software():
                names.report(flag)
    return frozenset(n for n in out if n in cat.features)


def _fold(flag: str) -> str | None:
    cat = catalog()
    renamed = tables.linux_renamed()
    if flag in renamed:
        return renamed[flag] if renamed[flag] in cat.features else None
    for spelling in (flag, flag.replace("_", "-"), flag.replace("_", "")):
        name = cat.canonical(spelling)
        if name is not None:
            return name
    return None


def _known_linux(flag: str) -> bool:
    """Whether Linux's own feature table names this flag (synthetic ones included)."""
    from cpusolve.encodings import catalog as catalog_module

    data = catalog_module._linux_cpufeatures()
    entries = data.get("features", [])
    spellings = {e.get("cpuinfo") for e in entries if isinstance(e, dict)}
    return flag in spellings or flag in data.get("synthetic_from", {})
