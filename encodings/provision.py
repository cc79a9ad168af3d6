"""What a KVM host can give a guest beyond its own silicon's CPUID bits.

KVM emulates the IA32_ARCH_CAPABILITIES MSR for every guest (Linux
``arch/x86/kvm/x86.c`` ``kvm_get_arch_capabilities()``): the CPUID bit on every host,
some bits always, some "*-no" bits whenever the host itself lacks the bug, and every other
bit only when the host's own MSR has it.  The facts are in ``data/kvm-arch-capabilities.json``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

#: KVM version whose rules are applied to hosts described without a probe.
KVM_KERNEL = "6.12"


@cache
def kvm_rules(kernel: str = KVM_KERNEL) -> dict:
    path = resources.files("cpusolve.encodings") / "data" / "kvm-arch-capabilities.json"
    return json.loads(path.read_text())[kernel]


def kvm_exposable(own: frozenset[str], bugs: frozenset[str], kernel: str = KVM_KERNEL) -> frozenset[str]:
    """Features a KVM host exposes, given its silicon's own features and bugs.

    ``own`` holds the host's CPUID bits and its real ARCH_CAPABILITIES bits (canonical
    QEMU names); ``bugs`` the Linux sysfs names of the bugs it has.
    """
    from cpusolve.encodings.catalog import ALWAYS_GUEST, catalog

    rules = kvm_rules(kernel)
    cat = catalog()
    arch_caps = {n for n, f in cat.features.items() if f.is_arch_cap}
    out = {f for f in own if f not in arch_caps}
    out |= set(ALWAYS_GUEST)
    out |= set(rules.get("cpuid_emulated", ["arch-capabilities"]))
    mask = set(rules.get("passthrough_mask", []))
    caps = {f for f in own if f in arch_caps and f in mask}
    caps |= set(rules.get("always", []))
    # Hosts flush L1D on VM entry by default (l1tf_vmx_mitigation "cond"), so KVM tells the
    # guest it need not flush for its own nested guests.
    caps |= set(rules.get("if_host_l1d_flush_not_never", []))
    for bit, bug in rules.get("if_host_not_affected", {}).items():
        if bug not in bugs:
            caps.add(bit)
    # gds-no: also when the host's microcode mitigates GDS, which we cannot know from a
    # model name; only the "host not affected" half is assumed.
    if "gather_data_sampling" not in bugs:
        caps.add("gds-no")
    # kvm_get_arch_capabilities(): without RTM the guest sees no TSX, so KVM withholds
    # TAA_NO (it would be meaningless); with RTM it is given only if the host lacks TAA.
    if "rtm" not in own:
        caps.discard("taa-no")
    elif "tsx_async_abort" not in bugs:
        caps.add("taa-no")
    out |= {c for c in caps if c in cat.features}
    return frozenset(out)
