"""From a host entry as read to the facts the solver uses.

A catalog model, an inline description or a fact file states a CPU's identity and bits;
what a guest can be given on that host also depends on what KVM does with them, and its
bugs follow from Linux's rules where the entry does not state them.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from cpusolve.core.hosts import Host, HostFacts
from cpusolve.core.pool import Pool
from cpusolve.encodings.cpu import CpuView
from cpusolve.encodings.expr import Ref
from cpusolve.encodings.protection import HostView, kvm_offers_synthesised, synthesised_bits
from cpusolve.encodings.provision import kvm_cpuid_filter, kvm_exposable, kvm_never
from cpusolve.encodings.readsets import ReadSets
from cpusolve.encodings.rules import load_rules
from cpusolve.inputs.pool_file import HostKindSpec, HostSpec, PoolSpec, read_host, read_pool, warn

#: what a pool that says nothing else is assumed to run: Debian 12's kernel, and SMT on
#: (the worst case for protection; a host may say "smt": false)
DEFAULTS = {"kernel": "6.1", "smt": True}


def host_bugs(vendor: str, fms: tuple[int, int, int], own: frozenset[str]) -> frozenset[str]:
    """The bugs Linux finds on bare metal with this identity and these bits (newest table)."""
    return silicon_bugs(vendor, fms, own)[0]


def silicon_bugs(vendor: str, fms: tuple[int, int, int],
                 own: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The sysfs bugs and Linux's internal bug bits on bare metal (the protection table
    reads MSBDS_ONLY, BHI...), from one evaluation of the newest table: they share their
    sub-rules (one memo for the host's view).  Host kinds that agree on the identity and
    on every bit an earlier evaluation read share it (encodings.readsets: a fleet's
    microcode and BIOS variants, 3,188 kinds of the diverse benchmark pool, take 47 paths)."""
    return _SILICON.get((vendor, fms), own, lambda features: _silicon_bugs(vendor, fms, features))


_SILICON: ReadSets[tuple[frozenset[str], frozenset[str]]] = ReadSets()


def _silicon_bugs(vendor: str, fms: tuple[int, int, int], features) -> tuple[frozenset[str], frozenset[str]]:
    table = load_rules()
    view = CpuView(vendor=vendor, family=fms[0], model=fms[1], stepping=fms[2], features=features,
                   hypervisor=False)
    memo: dict = {}
    bugs = frozenset(b for b in table.bugs if table.holds(Ref("bug", b), view, memo))
    internal = frozenset(name for name in table.internal if table.holds(Ref("bug", name), view, memo))
    return bugs, internal


def tsx_state(silicon: frozenset[str]) -> str:
    """Whether TSX transactions run on a host: not without RTM; not with the TSX_CTRL MSR,
    which Debian's kernels use to turn TSX off (CONFIG_X86_INTEL_TSX_MODE_OFF, tsx.c
    tsx_init()); otherwise Linux cannot turn it off."""
    if "rtm" not in silicon or "tsx-ctrl" in silicon:
        return "off"
    return "on"


def facts_of(kind: HostKindSpec, defaults: dict | None = None) -> HostFacts:
    """The facts of one host kind: KVM's view of the bits, the bugs, and what decides
    whether a guest's mitigations work there."""
    settings = {**DEFAULTS, **(defaults or {})}
    kernel = kind.kernel or settings["kernel"]
    smt = kind.smt if kind.smt is not None else settings["smt"]
    add, remove = kind.add, kind.remove
    own = (kind.features | add) - remove
    vendor, fms = kind.vendor, kind.fms
    # what the host's kernel forces on itself before deciding its bugs (TSA_SQ_NO on Zen 2...)
    if kind.bug_bits is not None:  # the silicon as libvirt decodes it, with what the entry adds
        own_silicon = (kind.bug_bits | add) - remove
    else:
        own_silicon = own
    synthesised = synthesised_bits(HostView(vendor, fms[0], fms[1], fms[2], own_silicon, kernel=kernel)) - own_silicon
    silicon = own_silicon | synthesised
    derived, internal = silicon_bugs(vendor, fms, silicon)
    if kind.bugs is not None and kind.bugs != derived:
        _disagree(kind, derived)
    bugs = derived | (kind.bugs or frozenset())
    tsx = kind.tsx or settings.get("tsx") or tsx_state(own_silicon)
    if kind.silicon and kind.hypervisor == "kvm":
        # Silicon bits (cpuinfo, CPUID dumps, inline lists): only what KVM virtualises.
        own = kvm_cpuid_filter(own, bugs, vendor, fms[0], kernel) | (own & add)
    exposable = kvm_exposable(own, bugs, vendor, kernel) if kind.hypervisor == "kvm" else frozenset(own)
    exposable = (exposable | add) - remove
    if kind.hypervisor == "kvm":
        exposable |= synthesised & kvm_offers_synthesised(kernel)
        exposable -= kvm_never(kernel)  # what this KVM cannot give a guest, even if added
        if tsx == "off":
            exposable -= TSX_BITS  # a host that turned TSX off offers it to no guest
    origin = kind.origin
    if add or remove:
        origin += "".join(f" +{f}" for f in sorted(add)) + "".join(f" -{f}" for f in sorted(remove))
    return HostFacts(vendor=vendor, family=fms[0], model=fms[1], stepping=fms[2],
                     features=exposable, bugs=bugs, origin=origin, silicon=silicon,
                     internal_bugs=internal, kernel=kernel, tsx=tsx, smt=smt,
                     microcode_fixes=kind.microcode_fixes, qemu=kind.qemu or settings.get("qemu"),
                     libvirt=kind.libvirt or settings.get("libvirt"))


TSX_BITS = frozenset({"rtm", "hle"})
_warned: set = set()


def _disagree(kind: HostKindSpec, derived: frozenset[str]) -> None:
    """Stated bugs (sysfs, a probe, the pool) and Linux's rules are joined: a kernel older
    than a disclosure has no sysfs file for it, which never means "not affected"."""
    key = (kind.where, derived, kind.bugs)
    if key in _warned:
        return
    _warned.add(key)
    missing = sorted(derived - kind.bugs)
    extra = sorted(kind.bugs - derived)
    parts = []
    if missing:
        parts.append(f"Linux's rules also find {', '.join(missing)} (kept: a missing sysfs entry is not "
                     "'not affected')")
    if extra:
        parts.append(f"the host states {', '.join(extra)}, which the rules do not derive (kept)")
    warn(f"{kind.where}{'; '.join(parts)}")


def host_of(spec: HostSpec, memo: dict | None = None, defaults: dict | None = None) -> Host:
    """A pool host from its entry; ``memo`` (kind -> facts) derives each kind once."""
    if memo is None:
        facts = facts_of(spec.kind, defaults)
    else:
        facts = memo.get(spec.kind)
        if facts is None:
            facts = memo[spec.kind] = facts_of(spec.kind, defaults)
    return Host(name=spec.name, facts=facts, count=spec.count, labels=spec.labels, kind=spec.kind)


def build_pool(spec: PoolSpec) -> Pool:
    memo: dict[HostKindSpec, HostFacts] = {}
    return Pool(hosts={name: host_of(h, memo, spec.host_defaults) for name, h in spec.hosts.items()},
                graph=spec.graph, directed=spec.directed, requirements=spec.requirements, source=spec.source,
                groups=spec.groups, host_defaults=spec.host_defaults)


def load_pool(source: str | Path | dict | nx.Graph, name: str | None = None) -> Pool:
    """A pool from a path ('-' = stdin), a parsed dict, or a networkx graph."""
    return build_pool(read_pool(source, name))


def host_from_entry(name: str, entry, label: str, base: Path, memo: dict | None = None,
                    defaults: dict | None = None) -> Host:
    """One pool.json host entry (a what-if's ``--add``, the Planner's ``add_host``)."""
    return host_of(read_host(name, entry, label, base, memo), defaults=defaults)
