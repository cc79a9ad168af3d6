"""What a KVM host can give a guest beyond its own silicon's CPUID bits.

KVM emulates the IA32_ARCH_CAPABILITIES MSR for every guest (Linux
``arch/x86/kvm/x86.c`` ``kvm_get_arch_capabilities()``): the CPUID bit on every host,
some bits always, some "*-no" bits whenever the host itself lacks the bug, and every other
bit only when the host's own MSR has it.  The facts are in ``data/kvm-arch-capabilities.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: KVM version whose rules are applied to hosts described without a probe.
KVM_KERNEL = "6.12"


@cache
def kvm_rules(kernel: str = KVM_KERNEL) -> dict:
    path = resources.files("cpusolve.encodings") / "data" / "kvm-arch-capabilities.json"
    return json.loads(path.read_text())[kernel]


def kvm_cpuid(kernel: str = KVM_KERNEL) -> dict:
    return _cpuid_data()[kernel]


@cache
def _cpuid_data() -> dict:
    path = resources.files("cpusolve.encodings") / "data" / "kvm-cpuid.json"
    return json.loads(path.read_text())


def topology_bits() -> frozenset[str]:
    """Bits QEMU adds from the guest's topology (-smp), not CPU features a model choice carries."""
    return frozenset(_cpuid_data()["qemu_guest_bits"]["topology"])


def amd_only_emulated() -> frozenset[str]:
    """QEMU sets AMD's MCA recovery bits for every KVM guest; an Intel guest has no use for
    them, so they are offered to AMD/Hygon domains only."""
    return frozenset(_cpuid_data()["qemu_guest_bits"]["amd_only_emulated"])


def _rule_holds(rule: dict, own: frozenset[str], bugs: frozenset[str], vendor: str, family: int) -> bool:
    """One ``when`` clause of kvm-cpuid.json, under KVM's default module parameters."""
    if rule.get("assume") is False:
        return False  # needs something a host description cannot tell (PEBS, new microcode)
    if "module" in rule and rule["module"] != _cpuid_data()["modules"].get(vendor):
        return False
    if "vendor" in rule and rule["vendor"] != vendor:
        return False
    if "family" in rule and family not in rule["family"]:
        return False
    if "qemu" in rule:
        return False  # needs a non-default QEMU option (e.g. -overcommit cpu-pm=on)
    if not set(rule.get("host", [])) <= own:
        return False
    return not set(rule.get("not_affected", [])) & bugs


def kvm_never(kernel: str = KVM_KERNEL) -> frozenset[str]:
    """Features this KVM never offers a guest (kvm_set_cpu_caps() does not set them):
    Debian 12's 6.1 has no flush-l1d, ibpb-brtype, sbpb, auto-ibrs for guests."""
    return frozenset(kvm_cpuid(kernel)["never"])


def kvm_cpuid_filter(own: frozenset[str], bugs: frozenset[str], vendor: str, family: int,
                     kernel: str = KVM_KERNEL) -> frozenset[str]:
    """Of a host's silicon CPUID bits, those KVM offers a guest (``KVM_GET_SUPPORTED_CPUID``).

    Silicon bits KVM never virtualises (monitor, ds, acpi, tm...) are dropped; bits KVM
    offers only with a non-default module parameter are dropped too.  Cross-vendor aliases
    KVM adds for migration between vendors (AMD's ibpb bit on Intel hosts...) are not added:
    cpusolve never migrates across vendors.
    """
    data = kvm_cpuid(kernel)
    passthrough = set(data["passthrough"])
    out = set()
    for f in own:
        if f in passthrough:
            out.add(f)
        elif f in data["conditional_rules"]:
            rule = data["conditional_rules"][f]
            if rule.get("default") and any(_rule_holds(w, own, bugs, vendor, family) for w in rule["when"]):
                out.add(f)
        elif f.startswith("linux:") or f not in data["never"]:
            out.add(f)  # not a QEMU-named CPUID bit (kept for the bug rules), or an MSR bit
    if vendor != "GenuineIntel":
        for f, extra in data.get("passthrough_also_when", {}).items():
            if any(_rule_holds(w, own, bugs, vendor, family) for w in extra.get("when", [])):
                out.add(f)
    return frozenset(out)


@cache
def _arch_caps() -> frozenset[str]:
    """The catalog's IA32_ARCH_CAPABILITIES bits (read once: every host kind asks)."""
    from cpusolve.encodings.catalog import catalog

    return frozenset(n for n, f in catalog().features.items() if f.is_arch_cap)


def kvm_exposable(own: frozenset[str], bugs: frozenset[str], vendor: str = "GenuineIntel",
                  kernel: str = KVM_KERNEL) -> frozenset[str]:
    """Features a KVM host exposes, given its silicon's own features and bugs.

    ``own`` holds the host's CPUID bits and its real ARCH_CAPABILITIES bits (canonical
    QEMU names); ``bugs`` the Linux sysfs names of the bugs it has.
    """
    parts = _exposable_parts(kernel)
    arch_caps = _arch_caps()
    out = set(own - arch_caps) | parts.offered
    if vendor not in ("AuthenticAMD", "HygonGenuine"):
        out -= parts.amd_only - own
    caps = set(own & arch_caps & parts.passthrough_mask) | parts.always
    for bit, bug in parts.if_host_not_affected:
        if bug not in bugs:
            caps.add(bit)
    # e.g. without RTM the guest sees no TSX, so KVM withholds TAA_NO (data: "assumed" and
    # "conditions" say what a host description cannot tell)
    for bit, feature in parts.only_with_host_feature:
        if feature not in own:
            caps.discard(bit)
    out |= caps & parts.named
    return frozenset(out)


@dataclass(frozen=True)
class _ExposableParts:
    """What :func:`kvm_exposable` reads of one KVM's data, as sets (every host kind asks)."""

    #: offered whatever the host: QEMU's always-guest bits, the CPUID bits KVM emulates
    #: (ARCH_CAPABILITIES itself among them), without the topology's
    offered: frozenset[str]
    amd_only: frozenset[str]
    passthrough_mask: frozenset[str]
    #: ARCH_CAPABILITIES bits KVM sets for every guest; hosts flush L1D on VM entry by
    #: default (l1tf_vmx_mitigation "cond"), so KVM tells the guest it need not flush for
    #: its own nested guests
    always: frozenset[str]
    if_host_not_affected: tuple[tuple[str, str], ...]
    only_with_host_feature: tuple[tuple[str, str], ...]
    #: the catalog's feature names (a cap bit the catalog cannot name is not offered)
    named: frozenset[str]


@cache
def _exposable_parts(kernel: str) -> _ExposableParts:
    from cpusolve.encodings.catalog import ALWAYS_GUEST, catalog

    rules = kvm_rules(kernel)
    offered = (set(ALWAYS_GUEST) | set(rules.get("cpuid_emulated", ["arch-capabilities"]))
               | (set(kvm_cpuid(kernel)["emulated"]) - topology_bits()))
    return _ExposableParts(
        offered=frozenset(offered), amd_only=amd_only_emulated(),
        passthrough_mask=frozenset(rules.get("passthrough_mask", [])),
        always=frozenset(rules.get("always", [])) | frozenset(rules.get("if_host_l1d_flush_not_never", [])),
        if_host_not_affected=tuple(rules.get("if_host_not_affected", {}).items()),
        only_with_host_feature=tuple(rules.get("only_with_host_feature", {}).items()),
        named=frozenset(catalog().features))
