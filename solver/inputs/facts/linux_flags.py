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

from cpusolve.encodings.catalog import LINUX_PER_VENDOR as PER_VENDOR
from cpusolve.encodings.catalog import catalog
from cpusolve.inputs.facts.common import FeatureNames

#: Linux names that differ from every QEMU/libvirt spelling of the same CPUID bit.
RENAMED = {
    "tsc_deadline_timer": "tsc-deadline", "pausefilter": "pause-filter", "tsxldtrk": "tsx-ldtrk",
    "amd_ibpb": "ibpb", "amd_ibrs": "ibrs", "amd_stibp": "amd-stibp",
}
#: Linux flags with no CPUID bit of their own (kernel state, VMX capabilities, derived bits):
#: dropped silently rather than reported as unknown features.
SYNTHETIC = frozenset("""
    constant_tsc rep_good nopl xtopology nonstop_tsc nonstop_tsc_s3 cpuid extd_apicid
    tsc_known_freq tsc_reliable aperfmperf arch_perfmon pebs bts art amd_dcm pln pts dtherm ida
    hwp hwp_notify hwp_act_window hwp_epp hwp_pkg_req hwp_highest_perf_change hfi epb
    cat_l3 cdp_l3 cat_l2 cdp_l2 mba rdt_a cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local
    invpcid_single ring3mwait cpuid_fault hw_pstate proc_feedback cpb cppc
    sme sev sev_es sev_snp tme total_memory_encryption sgx_lc sgx1 sgx2
    vmmcall xcompacted user_shstk pti kaiser retpoline retpoline_amd eagerfpu lfence_rdtsc
    tpr_shadow flexpriority ept vpid ept_ad ept_1gb ept_5level v_spec_ctrl x2avic
    intel_ppin amd_ppin smca perfmon_v2 amd_lbr_v2 amd_lbr_pmc_freeze
""".split())


def linux_data_present() -> bool:
    """True once the catalog has been imported with Linux spellings."""
    return any(f.linux for f in catalog().features.values())


def features_from_flags(flags: Iterable[str], vendor: str, names: FeatureNames) -> frozenset[str]:
    """Canonical QEMU names for the CPUID bits behind a cpuinfo ``flags`` line."""
    cat = catalog()
    flags = sorted(set(flags))
    # Linux hides the vendor CPUID bits behind these (AMD_IBPB, SPEC_CTRL, INTEL_STIBP...
    # have no cpuinfo name) and shows one synthetic flag instead: the vendor says which bit.
    out = {PER_VENDOR[f].get(vendor) for f in flags if f in PER_VENDOR} - {None}
    rest = [f for f in flags if f not in PER_VENDOR]
    if linux_data_present():
        out |= cat.from_linux_flags(rest)
        for flag in rest:
            if cat.canonical(flag) is None and flag not in SYNTHETIC and not _known_linux(flag):
                names.report(flag)
    else:
        for flag in rest:
            name = _fold(flag)
            if name is not None:
                out.add(name)
            elif flag not in SYNTHETIC:
                names.report(flag)
    return frozenset(n for n in out if n in cat.features)


def _fold(flag: str) -> str | None:
    cat = catalog()
    if flag in RENAMED:
        return RENAMED[flag] if RENAMED[flag] in cat.features else None
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
