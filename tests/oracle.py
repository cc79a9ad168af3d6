"""An independent oracle for cpusolve's answers: plain Python, no Z3, no cpusolve.backend.

It reads the same *data* cpusolve does for what is not in question here (the catalog, the
host facts a pool file yields, the bug bits of Linux's rule tables) and decides protection
with ``tests/protection_oracle.py``, a second implementation written from the kernel source
(it never reads the product's action or protection tables, nor its obligations).  From the
spec (docs/DESIGN.md, "The safety rule", "Objectives") it searches for the best guest of a
migration domain:

* the guest's visible features are a subset of what every host of the domain exposes,
  restricted to guest-visible catalog features and the target QEMU's names, closed under the
  catalog's dependencies, minus what the requirements forbid;
* its family/model/stepping is a usable candidate model's own or one of the domain's hosts';
  its topology has one or two threads per core;
* for every host, every bug the host has (not waived) and every guest kernel, the oracle
  says the guest is protected there (policy compat: that it attempts the mitigation).

Search.  Starting from "show everything", while some (host, bug, kernel) fails, it branches
over which protection-relevant feature to drop (the ones whose removal changes that verdict
first, then the others), with a score bound: a lower bound on the best guest, which the
product's answer must meet or beat.  Where the two models of protection read a source
differently (tests/test_protection_oracle.py KNOWN), :func:`conservative` takes the
stricter reading, so the bound stays a bound.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import networkx as nx

from cpusolve.encodings import targets
from cpusolve.encodings.catalog import HINT_BITS, catalog

from . import protection_oracle as po

ARCH = "arch-capabilities"
#: The bits a guest kernel's mitigation choices read (the oracle's own list): the search
#: only ever drops these; every other feature is shown whenever every host has it.
RELEVANT = frozenset({
    ARCH, "mds-no", "rdctl-no", "ibrs-all", "taa-no", "tsx-ctrl", "rtm", "hle", "fb-clear", "md-clear",
    "spec-ctrl", "ibrs", "ssbd", "stibp", "ibpb", "amd-ssbd", "virt-ssbd", "amd-stibp", "ibpb-brtype", "sbpb",
    "verw-clear", "rfds-clear", "rfds-no", "rsba", "bhi-ctrl", "bhi-no", "rrsba-ctrl", "its-no", "gds-no",
    "srso-no", "srso-user-kernel-no", "auto-ibrs", "topoext", "fbsdp-no", "psdp-no", "sbdr-ssdp-no", "ssb-no",
    "amd-no-ssb", "pbrsb-no", "tsa-sq-no", "tsa-l1-no", "skip-l1dfl-vmentry", "pschange-mc-no", "flush-l1d",
    "msr10a:19",
})
HOST_ONLY = ("itlb_multihit", "srbds", "gather_data_sampling", "vmscape")
GUEST_BUGS = ("meltdown", "spectre_v1", "spectre_v2", "spec_store_bypass", "l1tf", "mds", "tsx_async_abort",
              "mmio_stale_data", "retbleed", "spec_rstack_overflow", "reg_file_data_sampling",
              "indirect_target_selection", "tsa")


def oracle_host(t) -> po.Host:
    """A host kind as the oracle reads it.  Its IA32_ARCH_CAPABILITIES bits count only with
    the arch-capabilities CPUID bit, as the host's own kernel reads them (a hand-written host
    may list mds-no without the MSR)."""
    hv = t.host_view()
    bits = frozenset(hv.features)
    if ARCH not in bits:
        cat = catalog()
        bits = frozenset(f for f in bits if not (f.startswith("msr10a:") or (f in cat.features and
                                                                            cat.features[f].is_arch_cap)))
    return po.Host(t.vendor, t.family, t.model, t.stepping, bits, frozenset(hv.bugs), t.kernel, t.tsx, t.smt)


def _zen12(h) -> bool:
    return (h.vendor == "AuthenticAMD" and h.family == 23) or (h.vendor == "HygonGenuine" and h.family == 24)


def conservative(g: po.Guest, kernel: str, h: po.Host, bug: str, policy: str) -> bool:
    """The oracle's verdict, made stricter where the product is stricter for a stated reason
    (KNOWN in tests/test_protection_oracle.py): a MMIO_UNKNOWN host is not "not affected";
    Zen 5 TSA and one Zen generation's SRSO sequence on another's silicon are unsettled."""
    if policy == "compat":
        return po.attempted(g, kernel, h, bug)
    if adopted_reading(h, bug):
        return True
    h = adopted_host(h, bug)
    verdict = po.protected(g, kernel, h, bug)
    if verdict is None:
        return False
    if bug == "mmio_stale_data" and "MMIO_UNKNOWN" in h.bugs and "mmio_stale_data" not in h.bugs:
        # not "not affected": judged as an affected host of its kind
        return bool(po.protected(g, kernel, dataclasses.replace(h, bugs=h.bugs | {"mmio_stale_data"}), bug))
    if bug == "tsa" and h.vendor == "AuthenticAMD" and h.family == 26:
        return False
    if bug == "spec_rstack_overflow" and h.vendor == "AuthenticAMD":
        zen34 = h.family == 25
        if (zen34 and g.family != 25) or (_zen12(h) and g.family == 25):
            return False
    return verdict


def adopted_reading(h: po.Host, bug: str) -> bool:
    """Hosts on which a document says no guest action is needed, a reading the oracle
    adopts (its own statement of it, not the product's table; KNOWN in
    tests/test_protection_oracle.py lists them as the places the two first disagreed):

    * MMIO stale data on silicon affected by neither MDS nor a usable TAA:
      processor_mmio_stale_data.rst "For CPUs not affected by MDS or TAA, mitigation is
      needed only for the attacker with MMIO capability. Therefore, VERW is not required
      for kernel/userspace";
    * SRSO on Zen 1/2 with SMT off and the IBPB microcode: srso.rst, "microarchitectural
      limits prevent SRSO attacks from being effective" there.
    """
    if bug == "mmio_stale_data" and "mmio_stale_data" in h.bugs and "mds" not in h.bugs:
        return h.tsx == "off" or "tsx_async_abort" not in h.bugs
    if bug == "spec_rstack_overflow" and _zen12(h) and not h.smt:
        return "ibpb-brtype" in h.silicon
    return False


def adopted_host(h: po.Host, bug: str) -> po.Host:
    """The host as the adopted readings see it: TSA-SQ crosses SMT threads only at idle
    (6.12 bugs.c cpu_bugs_smt_update(): the idle clear is for SMT; Xen's idle-scrub comment:
    "TSA-SQ need scrub at idle with SMT"), and a halting vCPU exits to the host (KVM
    intercepts HLT by default), whose own idle path clears: for a guest, a TSA host's SMT
    is the host's business."""
    if bug == "tsa" and h.smt:
        return dataclasses.replace(h, smt=False)
    return h


def host_bugs(h: po.Host, waive) -> list[str]:
    bugs = [b for b in GUEST_BUGS if b in h.bugs and b not in waive]
    if "MMIO_UNKNOWN" in h.bugs and "mmio_stale_data" not in h.bugs and "mmio_stale_data" not in waive:
        bugs.append("mmio_stale_data")
    return bugs


def first_failure(hosts: list[po.Host], g: po.Guest, req) -> tuple | None:
    for h in hosts:
        for bug in host_bugs(h, req.waive):
            for kernel in req.kernels:
                if not conservative(g, kernel, h, bug, req.policy):
                    return (h, bug, kernel)
    return None


# -- feature sets ----------------------------------------------------------------------------

def allowed(req) -> frozenset[str]:
    cat = catalog()
    return cat.guest_features & targets.qemu(req.qemu).features


def closed(features) -> frozenset[str]:
    """The largest subset of ``features`` whose every dependency group is met inside it."""
    cat = catalog()
    cur = set(features)
    changed = True
    while changed:
        changed = False
        for f in sorted(cur):
            for group in cat.features[f].requires:
                if not any(g in cur for g in group):
                    cur.discard(f)
                    changed = True
                    break
    return frozenset(cur)


def usable_models(vendor: str, req) -> list:
    """Catalog models a guest may name: the vendor's, known to the QEMU asked for, and whose
    every feature a ``+``/``-`` flag may carry (so any visible set is reachable by flags)."""
    ok = allowed(req)
    return [m for m in catalog().models
            if m.vendor == vendor and m.name in targets.qemu(req.qemu).models and m.features <= ok]


def score(features) -> int:
    """Objective 1: visible guest features, hint bits excluded."""
    return len(frozenset(features) & catalog().guest_features - HINT_BITS)


# -- the oracle ------------------------------------------------------------------------------

@dataclass
class Best:
    score: int
    features: frozenset[str]
    fms: tuple[int, int, int]
    smt: bool = False
    explored: int = 0
    notes: list[str] = field(default_factory=list)


def best_guest(types, req, budget: int = 60) -> Best | None:
    """The best protected guest the search finds for a domain of these host kinds (a lower
    bound on the best one), or None if it finds none.  ``budget`` bounds the guests tried
    per (family/model/stepping, topology): the hosts' identities first, then the models'."""
    vendors = {t.vendor for t in types}
    if len(vendors) != 1:
        return None
    vendor = next(iter(vendors))
    if req.vendor and req.vendor != vendor:
        return None
    models = usable_models(vendor, req)
    if not models:
        return None
    cat = catalog()
    common = frozenset.intersection(*(frozenset(t.features) for t in types))
    base = closed((common & allowed(req)) - req.forbid)
    need = set(req.require)
    if req.min_model:
        need |= cat.model(req.min_model).features & cat.guest_features
    if not need <= base:
        return None
    hosts = [oracle_host(t) for t in types]
    own = sorted({t.fms for t in types})
    fms_candidates = own + sorted({m.fms for m in models} - set(own))
    best: Best | None = None
    explored = 0
    for fms in fms_candidates:
        for smt in (False, True):
            seen: set[frozenset[str]] = set()
            stack = [frozenset()]
            tried = 0
            while stack and tried < budget:
                dropped = stack.pop()
                if dropped in seen:
                    continue
                seen.add(dropped)
                g = closed(base - dropped)
                if not need <= g:
                    continue
                s = score(g)
                if best is not None and s <= best.score:
                    continue
                explored += 1
                tried += 1
                guest = po.Guest(vendor, fms[0], fms[1], fms[2], frozenset(g), smt)
                fail = first_failure(hosts, guest, req)
                if fail is None:
                    best = Best(s, g, fms, smt)
                    continue
                h, bug, kernel = fail
                present = sorted((g & RELEVANT) - dropped)
                helps = [x for x in present if conservative(po.Guest(vendor, *fms, frozenset(closed(g - {x})), smt),
                                                            kernel, h, bug, req.policy)]
                for x in reversed(helps or present):
                    stack.append(dropped | {x})
    if best is not None:
        best.explored = explored
    return best


def check_guest(types, req, model_name: str, visible: frozenset[str], fms, smt: bool) -> list[str]:
    """Every way a (model, visible features, shown f/m/s, topology) fails the spec for these hosts."""
    cat = catalog()
    out: list[str] = []
    model = cat.model(model_name)
    ok = allowed(req)
    vendor = model.vendor
    for f in sorted((visible - model.features) | (model.features - visible)):
        if f not in ok:
            out.append(f"flag {f} cannot be carried by a guest model")
    if model.name not in targets.qemu(req.qemu).models:
        out.append(f"{model.name} unknown to {targets.qemu(req.qemu).label}")
    for i, t in enumerate(types):
        if t.vendor != vendor:
            out.append(f"host type {i} is {t.vendor}")
        if visible - t.features:
            out.append(f"host type {i} cannot expose {sorted(visible - t.features)}")
    if closed(visible) != visible:
        out.append(f"dependencies broken: {sorted(visible - closed(visible))}")
    if fms != model.fms and fms not in {t.fms for t in types}:
        out.append(f"f/m/s {fms} is neither the model's nor a host's")
    if req.require - visible:
        out.append(f"required {sorted(req.require - visible)} missing")
    if req.forbid & visible:
        out.append(f"forbidden {sorted(req.forbid & visible)} shown")
    if req.min_model:
        short = (cat.model(req.min_model).features & cat.guest_features) - visible
        if short:
            out.append(f"below {req.min_model}: {sorted(short)}")
    if req.vendor and req.vendor != vendor:
        out.append(f"vendor {vendor} but {req.vendor} required")
    guest = po.Guest(vendor, fms[0], fms[1], fms[2], frozenset(visible), smt)
    for t in types:
        h = oracle_host(t)
        for bug in host_bugs(h, req.waive):
            for kernel in req.kernels:
                verdict = (po.attempted(guest, kernel, h, bug) if req.policy == "compat"
                           else po.protected(guest, kernel, h, bug))
                if verdict is False:
                    out.append(f"unprotected: {bug} ({kernel}) on {t.origin}")
    return out


# -- domains ---------------------------------------------------------------------------------

def expected_domains(data: dict) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(hosts, starts) of every migration domain of a pool dict, from the README's rules."""
    names = list(data["hosts"])
    mig = data.get("migration")
    if mig is None:
        return [(tuple(sorted(names)), tuple(sorted(names)))]
    directed = mig.get("directed", False)
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(names)
    for a, b in mig.get("edges", []):
        if a != b:
            g.add_edge(a, b)
    for group in mig.get("groups", []):
        for a in group:
            for b in group:
                if a != b:
                    g.add_edge(a, b)
                    if directed:
                        g.add_edge(b, a)
    out: dict[frozenset[str], list[str]] = {}
    if not directed:
        for comp in nx.connected_components(g):
            out[frozenset(comp)] = sorted(comp)
    else:
        for h in names:
            out.setdefault(frozenset(nx.descendants(g, h) | {h}), []).append(h)
    return sorted((tuple(sorted(k)), tuple(sorted(v))) for k, v in out.items())


class OracleBackend:
    """The oracle as a second backend behind the product's problem interface
    (``cpusolve.problem.solution.Backend``): it reads only what a problem is about (its
    host kinds, requirements and catalog), never the problem's formulas, which carry the
    product's safety derivation; it answers with the guest :func:`best_guest` finds, on the
    catalog model that carries it with the fewest flags.  It names no conflicts: an
    infeasible problem's core is "timeout" (no explanation), which the engine reports as
    such."""

    def __init__(self, budget: int = 60) -> None:
        self.budget = budget

    def optimum(self, problem, timeout: float):
        from cpusolve.encodings.rules import SMT
        from cpusolve.problem.solution import Choice, Optimum

        best = best_guest(problem.types, problem.req, self.budget)
        if best is None:
            return Optimum("unsat")
        model = self.model_for(problem.types, problem.req, best)
        if model is None:
            return Optimum("unsat")
        return Optimum("sat", Choice(model, frozenset(best.features | ({SMT} if best.smt else set())), best.fms))

    @staticmethod
    def model_for(types, req, best: Best) -> str | None:
        """The usable model on which (features, f/m/s, topology) is a valid guest with the
        fewest flags (then its own f/m/s, then the newest)."""
        cands = []
        for m in usable_models(types[0].vendor, req):
            problems = check_guest(types, req, m.name, best.features, best.fms, best.smt)
            if [p for p in problems if not p.startswith("unprotected")]:
                continue  # (protection is the search's, under the readings it adopts)
            cands.append((len(best.features ^ (m.features & catalog().guest_features)), m.fms != best.fms,
                          -m.index, m.name))
        return min(cands)[3] if cands else None

    def minimal_core(self, problem, timeout: float):
        from cpusolve.problem.solution import Core

        return Core("timeout")
