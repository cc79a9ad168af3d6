"""Agreement with libvirt: the same real hosts through `virsh cpu-baseline` and cpusolve.

For each set of real hosts of one vendor (libvirt's own CPUID dumps of real machines, see
tests/data/libvirt-agreement/SOURCE.md), the guest libvirt's baseline gives and the guest
cpusolve gives with every bug waived (what runs everywhere, which is all libvirt computes)
must show the same features, compared in canonical QEMU names over the features both tools
can name. Every difference must be
listed in KNOWN below with its reason; anything else fails with the feature, the side that
has it and the hosts.

How each side is fed:

* libvirt: ``virsh -c test:///default cpu-baseline --features`` over the hosts' ``<cpu>``
  elements (``<CPU>.libvirt9.xml``: libvirt 11.3's own decode of each dump, rewritten in
  libvirt 9.0's cpu_map names by derive.py). ``--features`` (VIR_CONNECT_BASELINE_CPU_
  EXPAND_FEATURES) lists every feature of the result, so the comparison does not depend on
  what libvirt's models contain (without it, libvirt prints only the features beyond its
  chosen model, in names of its own map). ``--migratable`` is not used: the test driver
  of libvirt 9.0 refuses it ("unsupported flags (0x2) in function
  testConnectBaselineCPU"), and where supported it would drop xsaves as well as invtsc
  (both migratable='no' in libvirt's map, though QEMU migrates xsaves), which would compare
  worse; invtsc is a KNOWN difference instead.
* cpusolve: each raw dump read by ``cpusolve.inputs.facts.read_fact_file`` and given inline with
  ``"hypervisor": "as-is"``, so cpusolve takes the silicon's bits literally, as libvirt
  does, instead of adding what KVM emulates.

Also: each host alone (libvirt's baseline of one host is its decode) must read the same
through cpusolve's raw-dump reader, and REFUSED records sets where libvirt answers but no
guest is protected (these dumps predate the MDS microcode), with the reason.

Models: libvirt never prints ``-vN`` names; SETS records the model each side picks and the
QEMU version libvirt's name stands for (``catalog().resolve_model_name``).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from cpusolve.api import solve
from cpusolve.encodings.catalog import catalog
from cpusolve.inputs.facts import read_fact_file
from cpusolve.inputs.pool_file import known_bugs

DATA = Path(__file__).parent / "data" / "libvirt-agreement"
VIRSH = shutil.which("virsh")

pytestmark = pytest.mark.skipif(
    VIRSH is None, reason="virsh not installed (apt-get install libvirt-clients)")

# id: (hosts, libvirt's model, the QEMU version that name is, cpusolve's model)
SETS = {
    "broadwell-ep+skylake-sp": (("Xeon-E5-2650-v4", "Xeon-Gold-6148"),
                                "Broadwell", "Broadwell-v1", "Broadwell-v1"),
    "broadwell-u+kabylake": (("Core-i7-5600U", "Core-i7-7700"),
                             "Broadwell", "Broadwell-v1", "Broadwell-v1"),
    "naples+rome": (("EPYC-7601-32-Core", "EPYC-7502-32-Core"),
                    "EPYC", "EPYC-v1", "EPYC-v5"),
    "zen1+zen2-desktop": (("Ryzen-7-1800X-Eight-Core", "Ryzen-9-3900X-12-Core"),
                          "EPYC", "EPYC-v1", "EPYC-v5"),
    "skylake-sp+icelake-sp": (("Xeon-Gold-5115", "Xeon-Gold-6130", "Ice-Lake-Server"),
                              "Skylake-Server-IBRS", "Skylake-Server-v2", "Skylake-Server-v2"),
    "cascadelake+cooperlake": (("Xeon-Platinum-8268", "Cooperlake"),
                               "Cascadelake-Server", "Cascadelake-Server-v1",
                               "Cascadelake-Server-v2"),
    "sandybridge+ivybridge": (("Core-i7-2600", "Core-i7-3770"),
                              "SandyBridge", "SandyBridge-v1", "SandyBridge-v1"),
    "westmere-ex+nehalem": (("Xeon-E7-4830", "Xeon-W3520"),
                            "Nehalem", "Nehalem-v1", "Nehalem-v1"),
    "haswell-tsx-erratum+kabylake": (("Core-i5-4670T", "Core-i7-7700"),
                                     "Haswell-noTSX", "Haswell-v2", "Haswell-v1"),
    "bulldozer+piledriver": (("Opteron-6282", "A10-5800K"),
                             "Opteron_G4", "Opteron_G4-v1", "Opteron_G4-v1"),
}
# Why cpusolve's model differs from the version libvirt's name stands for, where it does:
# the feature sets agree; cpusolve prefers the catalog model needing the fewest +/- flags.
MODEL_NOTES = {
    "EPYC-v5": "EPYC-v5 = EPYC-v1 + clzero, ibpb, perfctr-core, xsaveerptr, xsaves, succor, "
               "overflow-recov: all on every host; libvirt 9.0 has no EPYC versions and "
               "writes them as + features",
    "Cascadelake-Server-v2": "Cascadelake-Server-v2 = -v1 + arch-capabilities, ibrs-all, "
                             "mds-no, rdctl-no, skip-l1dfl-vmentry: both hosts' MSR 0x10a "
                             "has them; libvirt writes them as + features",
    "Haswell-v1": "cpusolve keeps TSX for Core-i5-4670T (see KNOWN hle/rtm), so Haswell-v1 "
                  "(with TSX) rather than Haswell-v2 = Haswell-noTSX",
}

# Sets where libvirt answers and no guest is protected: id -> (hosts, libvirt's model, the
# bug, why).
REFUSED = {
    "haswell-ep+broadwell-ep+skylake-sp": (
        ("Xeon-E5-2650-v3", "Xeon-E5-2650-v4", "Xeon-Gold-6148"), "Haswell-noTSX",
        "mds",
        "these dumps predate the MDS microcode (no md-clear): a guest's VERW clears nothing "
        "there. (The v4 and Gold 6148 also run TSX without TSX_CTRL, so a guest without rtm is "
        "exposed to TAA there too: hiding rtm stops nothing on such hosts; only the MDS VERW, "
        "with microcode, protects.)"),
}


@dataclass(frozen=True)
class Known:
    side: str               # "libvirt" or "cpusolve": who may show the feature alone
    reason: str
    hosts: frozenset = frozenset()   # the difference needs one of these hosts; empty = any
    optional: bool = False           # need not occur in any set

# Every accepted difference between the two guests, with its reason.
KNOWN = {
    "invtsc": Known("libvirt",
                    "unmigratable (migratable='no' in libvirt's map): cpusolve never gives it; "
                    "libvirt keeps it without --migratable, which 9.0's test driver refuses"),
    "pdcm": Known("libvirt",
                  "PMU-only (IA32_PERF_CAPABILITIES, QEMU exposes it only with pmu=on): cpusolve "
                  "never gives PMU bits (catalog class 'pmu'); libvirt's baseline keeps it"),
    "hle": Known("cpusolve",
                 "libvirt's host decode drops TSX on Haswell 6/60 (x86DataFilterTSX, erratum "
                 "HSW136: TSX disabled by microcode); this dump still shows the CPUID bits and "
                 "cpusolve takes them literally", frozenset({"Core-i5-4670T"})),
    "rtm": Known("cpusolve", "as hle", frozenset({"Core-i5-4670T"})),
}
# Silicon bits KVM never exposes to a guest (Linux arch/x86/kvm/cpuid.c kvm_set_cpu_caps()
# and svm_set_cpu_caps() leave them out of KVM_GET_SUPPORTED_CPUID; intel-pt only with the
# non-default pt_mode=1): cpusolve may drop them from hosts read from raw dumps, libvirt's
# baseline knows nothing of KVM. Optional: today's reader keeps them.
KVM_NEVER = ("monitor", "ds", "acpi", "tm", "tm2", "pbe", "est", "dtes64", "ds-cpl", "smx",
             "xtpr", "dca", "ht", "intel-pt", "extapic", "ibs", "skinit", "wdt", "lwp", "tce",
             "nodeid-msr", "perfctr-nb", "svm-lock", "avic", "decodeassists", "flushbyasid")
for _f in KVM_NEVER:
    KNOWN[_f] = Known("libvirt", "a silicon bit KVM never exposes; cpusolve may drop it",
                      optional=True)

# Names outside the comparison. libvirt 9.0 names with no QEMU -cpu property (cpusolve's
# catalog has none; they are OS state or host-only monitoring, never a guest flag):
LIBVIRT_UNNAMED = {
    "osxsave": "CR4.OSXSAVE mirror, set by the guest OS, not a -cpu flag",
    "ospke": "CR4.PKE mirror, set by the guest OS, not a -cpu flag",
    "cmt": "cache monitoring (RDT), no QEMU property",
    "mbm_total": "memory bandwidth monitoring (RDT), no QEMU property",
    "mbm_local": "memory bandwidth monitoring (RDT), no QEMU property",
    "pconfig": "PCONFIG (MKTME), no QEMU property",
    "cvt16": "AMD CVT16 (pre-Bulldozer draft), no QEMU property",
}
# QEMU features of these hosts that libvirt 9.0's cpu_map cannot name (libvirt 11.3 can):
LIBVIRT9_LACKS = {"zero-fcs-fds", "fdp-excptn-only", "flush-l1d", "overflow-recov", "succor"}


@functools.cache
def _comparable() -> frozenset[str]:
    """Canonical names of the features libvirt 9.0's cpu_map knows (libvirt9-features.txt)."""
    cat = catalog()
    names = (DATA / "libvirt9-features.txt").read_text().split()
    unnamed = {n for n in names if cat.canonical(n) is None}
    assert unnamed == set(LIBVIRT_UNNAMED), (
        f"libvirt names cpusolve cannot name changed: {sorted(unnamed ^ set(LIBVIRT_UNNAMED))}")
    return frozenset(cat.canonical(n) for n in names if n not in unnamed)


def _cpu_elements(cpus) -> str:
    """The hosts' <cpu> elements, one after another (what virsh cpu-baseline reads)."""
    parts = []
    for cpu in cpus:
        root = ET.parse(DATA / f"{cpu}.libvirt9.xml").getroot()
        parts.append(ET.tostring(root, encoding="unicode"))
    return "\n".join(parts) + "\n"


@functools.cache
def libvirt_baseline(cpus: tuple[str, ...], tmp: str) -> tuple[str, frozenset[str]]:
    """(model, canonical feature names) of `virsh cpu-baseline --features` over `cpus`."""
    path = Path(tmp) / ("+".join(cpus) + ".xml")
    path.write_text(_cpu_elements(cpus))
    run = subprocess.run([VIRSH, "-c", "test:///default", "cpu-baseline", "--features", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"virsh cpu-baseline {cpus}: {run.stderr.strip()}"
    root = ET.fromstring(run.stdout)
    names = {f.get("name") for f in root.findall("feature") if f.get("policy") == "require"}
    unknown = {n for n in names if n not in LIBVIRT_UNNAMED and catalog().canonical(n) is None}
    assert not unknown, f"libvirt names cpusolve cannot read: {sorted(unknown)}"
    feats = frozenset(catalog().canonical(n) for n in names if n not in LIBVIRT_UNNAMED)
    return root.findtext("model"), feats


def _host(cpu: str) -> dict:
    fact = read_fact_file(DATA / f"x86_64-cpuid-{cpu}.xml")
    return {"vendor": fact.vendor, "family": fact.family, "model": fact.model,
            "stepping": fact.stepping, "features": sorted(fact.features), "hypervisor": "as-is"}


@functools.cache
def cpusolve_guest(cpus: tuple[str, ...]):
    """What runs on every host: every bug waived, as libvirt knows none."""
    return solve({"hosts": {cpu: _host(cpu) for cpu in cpus}, "requirements": {"waive": known_bugs()}}).domains[0]


def _unexplained(cpus, libvirt: frozenset[str], ours: frozenset[str]) -> list[str]:
    both = _comparable()
    out = []
    for side, extra in (("libvirt", (libvirt - ours) & both), ("cpusolve", (ours - libvirt) & both)):
        for feat in sorted(extra):
            known = KNOWN.get(feat)
            if known and known.side == side and (not known.hosts or known.hosts & set(cpus)):
                continue
            out.append(f"{feat}: only {side}'s guest has it")
    return out


def _differences(libvirt: frozenset[str], ours: frozenset[str]) -> set[str]:
    return (libvirt ^ ours) & _comparable()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return str(tmp_path_factory.mktemp("libvirt-agreement"))


@pytest.mark.parametrize("set_id", SETS)
def test_guest_features_agree(set_id, tmp):
    cpus, lv_model, lv_version, our_model = SETS[set_id]
    model, libvirt = libvirt_baseline(cpus, tmp)
    dom = cpusolve_guest(cpus)
    assert dom.status == "ok-waived", f"{set_id}: cpusolve {dom.status}: {[c.text for c in dom.conflicts]}"
    ours = frozenset(dom.features)
    bad = _unexplained(cpus, libvirt, ours)
    assert not bad, (f"{set_id} ({', '.join(cpus)}): unexplained differences between "
                     f"libvirt's {model} and cpusolve's {dom.guest.model}: {bad}; add a reasoned "
                     "entry to KNOWN only if the difference is right")
    # features only one side can name: exactly the documented ones
    assert not (ours - _comparable()) - LIBVIRT9_LACKS, sorted(ours - _comparable() - LIBVIRT9_LACKS)
    # the models: libvirt's legacy name, the version it is, cpusolve's -vN
    assert model == lv_model, f"{set_id}: libvirt now picks {model}, SETS says {lv_model}"
    assert catalog().resolve_model_name(model) == lv_version
    assert dom.guest.model == our_model, f"{set_id}: cpusolve now picks {dom.guest.model}"
    assert our_model == lv_version or our_model in MODEL_NOTES


@pytest.mark.parametrize("set_id", REFUSED)
def test_refused_where_no_guest_is_protected(set_id, tmp):
    cpus, lv_model, bug, _why = REFUSED[set_id]
    model, libvirt = libvirt_baseline(cpus, tmp)
    assert model == lv_model
    assert "rtm" not in libvirt and "taa-no" not in libvirt   # the guest libvirt gives
    assert any("rtm" in _host(c)["features"] for c in cpus)   # on hosts that run TSX
    dom = solve({"hosts": {cpu: _host(cpu) for cpu in cpus}}).domains[0]
    assert dom.status == "infeasible"
    conflict = next(c for c in dom.conflicts if c.bug == bug)
    assert "lack md-clear (host microcode)" in conflict.text


@pytest.mark.parametrize("cpu", sorted({c for s in SETS.values() for c in s[0]}
                                       | {c for s in REFUSED.values() for c in s[0]}))
def test_host_decode_agrees(cpu, tmp):
    """One host alone: libvirt's baseline is its decode; cpusolve's reader must see the same."""
    _model, libvirt = libvirt_baseline((cpu,), tmp)
    ours = frozenset(_host(cpu)["features"])
    bad = _unexplained((cpu,), libvirt, ours)
    assert not bad, f"{cpu}: libvirt and cpusolve decode the dump differently: {bad}"


def test_every_known_difference_occurs(tmp):
    """KNOWN holds no stale entries: each non-optional one shows up in some set."""
    seen = set()
    for cpus, *_ in SETS.values():
        _model, libvirt = libvirt_baseline(cpus, tmp)
        seen |= _differences(libvirt, frozenset(cpusolve_guest(cpus).features))
    stale = {f for f, k in KNOWN.items() if not k.optional} - seen
    assert not stale, f"KNOWN entries no set exercises: {sorted(stale)}"


def test_known_table_is_in_canonical_names():
    """The tables speak cpusolve's canonical names, of features libvirt 9.0 can name."""
    cat = catalog()
    assert all(cat.canonical(f) == f for f in KNOWN), [f for f in KNOWN if cat.canonical(f) != f]
    assert set(KNOWN) <= _comparable(), sorted(set(KNOWN) - _comparable())
    assert all(cat.canonical(f) == f for f in LIBVIRT9_LACKS)
    assert not LIBVIRT9_LACKS & _comparable()
    # the reasons given for invtsc and pdcm are cpusolve's own classification
    assert cat.feature("invtsc").cls == "unmigratable" and cat.feature("pdcm").cls == "pmu"
