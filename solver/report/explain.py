"""What holds a domain back, and why an infeasible domain has no answer, in operator words."""

from __future__ import annotations

import dataclasses

from cpusolve.core.hosts import HostRef
from cpusolve.domains.kinds import HostKinds
from cpusolve.encodings.expr import FALSE, All, Any, Fact, Ref, features_of
from cpusolve.encodings.protection import guest_text, needs_text, protection_table
from cpusolve.encodings.rules import load_rules
from cpusolve.encodings.safety import Obligation
from cpusolve.hostfacts.derive import host_bugs
from cpusolve.problem.keys import FactKey, Forbid, Lacks, MinModel, Must, QemuLacks, Require
from cpusolve.report.records import Conflict, Shortfall

MAX_NAMES = 8


def _names(refs) -> str:
    """Host names with counts; long lists end in "and N more hosts (M machines)"."""
    refs = list(refs)
    shown = [f"{r.name} (x{r.count})" if r.count > 1 else r.name for r in refs[:MAX_NAMES]]
    rest = refs[MAX_NAMES:]
    if rest:
        shown.append(f"and {len(rest)} more hosts ({sum(r.count for r in rest)} machines)")
    return ", ".join(shown)


def shortfalls(kinds: HostKinds, cat) -> tuple[Shortfall, ...]:
    """Each guest-visible feature some hosts of the domain have and others lack."""
    types = kinds.types
    if len(types) < 2:
        return ()
    union = frozenset.union(*(t.features for t in types)) & cat.guest_features
    common = frozenset.intersection(*(t.features for t in types))
    machines = kinds.machines
    out = []
    counted: dict[int, int] = {}  # lists are shared between features (HostKinds keeps them alive)
    for f in sorted(union - common):
        refs = kinds.lacking(f)
        lacking = counted.get(id(refs))
        if lacking is None:
            lacking = counted[id(refs)] = sum(r.count for r in refs)
        out.append(Shortfall(f, refs, machines - lacking))
    return tuple(out)


def conflicts_text(kinds: HostKinds, core: tuple[FactKey, ...]) -> tuple[Conflict, ...]:
    """The minimal conflict of an infeasible domain, one Conflict per named fact."""
    refs = kinds.of
    out: list[Conflict] = []
    for key in core:
        if isinstance(key, Lacks):
            hs = refs(key.kinds)
            feature = key.feature
            out.append(Conflict("lacks", f"{_names(hs)} cannot expose {feature}",
                                f"give {'them' if len(hs) > 1 else 'it'} {feature} (microcode/BIOS/kernel "
                                f"update) or take {'them' if len(hs) > 1 else 'it'} out of this domain",
                                hs, feature=feature))
        elif isinstance(key, QemuLacks):
            out.append(Conflict("qemu", f"{key.target} has no name for {key.feature}",
                                "use a newer QEMU or libvirt (requirements.qemu, requirements.libvirt)",
                                feature=key.feature))
        elif isinstance(key, Require):
            out.append(Conflict("require", f"requirement: the guest must have {key.feature}",
                                f"drop {key.feature} from requirements.require", feature=key.feature))
        elif isinstance(key, Forbid):
            out.append(Conflict("forbid", f"requirement: the guest must not have {key.feature}",
                                f"drop {key.feature} from requirements.forbid", feature=key.feature))
        elif isinstance(key, MinModel):
            out.append(Conflict("min_model", f"requirement: the guest must be at least {key.model}",
                                "lower requirements.min_model"))
        elif isinstance(key, Must):
            out.append(_obligation(key.obligation, refs(key.obligation.causes), kinds))
    if not out:
        out.append(Conflict("unknown", "no minimal conflict found within the time bound",
                            "raise --timeout"))
    return tuple(dict.fromkeys(out))


def _obligation(ob: Obligation, hs: tuple[HostRef, ...], kinds: HostKinds) -> Conflict:
    """What a guest needs on these hosts and cannot have, and what can change that."""
    host = kinds.types[ob.causes[0]].host_view()
    table = protection_table()
    split = f"take {_names(hs)} out of this domain (split it)"
    waive = f"waive {ob.bug} (requirements.waive) if you accept guests unprotected there"
    if ob.kind == "attempt":
        return Conflict("unprotected", f"{ob.bug} affects {_names(hs)}: a Linux {ob.kernel} guest must at least "
                        f"run {guest_text(ob.expr)} there, and no guest CPU of this domain makes it",
                        f"{split}, or {waive}", hs, bug=ob.bug)
    unknown = [e for e in table.entries_on(host, ob.bug) if e.status == "unknown"]
    if ob.expr == FALSE and unknown and not missing_host_bits(table, host, ob.bug):
        why = unknown[0].why.split(". ")[0].rstrip(".")
        immune = immunity_bits(kinds.types[ob.causes[0]], ob.bug)
        read = (f"if {_names(hs)} enumerate{'s' if len(hs) == 1 else ''} {', '.join(immune)} in CPUID, "
                f"Linux counts {'it' if len(hs) == 1 else 'them'} unaffected: list them in its add (or read the host "
                f"with cpusolve probe or a CPUID dump); else " if immune else "")
        return Conflict("unprotected", f"{ob.bug} affects {_names(hs)} and no source settles whether a Linux "
                        f"{ob.kernel} guest's {guest_text(unknown[0].guest)} protects there: {why}",
                        f"{read}{split}, or {waive} (after checking the vendor's guidance for this CPU)",
                        hs, bug=ob.bug)
    if ob.expr == FALSE:
        bits = missing_host_bits(table, host, ob.bug)
        need = (f": {_names(hs)} lack{'s' if len(hs) == 1 else ''} {' or '.join(bits)} (host microcode)"
                if bits else "")
        fix = f"give {'them' if len(hs) > 1 else 'it'} {' or '.join(bits)} where a microcode update has it, " \
              f"or {split}, or {waive}" if bits else f"{split}, or {waive}"
        return Conflict("unprotected", f"{ob.bug} affects {_names(hs)} and no guest mitigation protects a Linux "
                        f"{ob.kernel} guest there{need}", fix, hs, bug=ob.bug)
    entries = table.entries_on(host, ob.bug)
    return Conflict("unprotected", f"{ob.bug} affects {_names(hs)}: a Linux {ob.kernel} guest is protected there only "
                    f"by {needs_text(entries)}, which no guest CPU of this domain makes it do",
                    f"{split}, or {waive}", hs, bug=ob.bug)


def immunity_bits(facts, bug: str) -> list[str]:
    """The '*-no' bits Linux's rule for ``bug`` reads that, all enumerated by the host's
    CPUID, would make Linux count the host unaffected (TSA_SQ_NO, TSA_L1_NO, TSA_FILL_NO on
    Zen 5): what a real read of the host may show and a catalog model does not."""
    rule = load_rules().rules.get(bug)
    if rule is None:
        return []
    own = frozenset(facts.silicon or facts.features)
    wanted = sorted(f for f in features_of(rule.affected)
                    if f.endswith(("-no", "_no")) and f not in own)
    fms = (facts.family, facts.model, facts.stepping)
    if not wanted or bug in host_bugs(facts.vendor, fms, own | set(wanted)):
        return []
    return wanted


def missing_host_bits(table, host, bug: str) -> list[str]:
    """Host bits (microcode) whose presence alone would make a protected or partial entry of
    ``bug`` apply on ``host``: what an operator could change on the host itself."""
    out: list[str] = []
    for e in table.bugs[bug].entries:
        if e.status == "unknown" or e.guest == FALSE or table.host_holds(host, e.host):
            continue
        wanted = sorted(f for f in _host_features(e.host) if f not in host.features)
        if wanted and table.host_holds(dataclasses.replace(host, features=host.features | set(wanted)), e.host):
            label = " + ".join(wanted)
            if label not in out:
                out.append(label)
    return out


def _host_features(expr) -> set[str]:
    t = type(expr)
    if t is Fact and expr.kind == "host_feature":
        return {expr.arg}
    if t in (All, Any):
        return set().union(*(_host_features(e) for e in expr.items))
    if t is Ref and expr.kind == "host_def":
        return _host_features(protection_table().host_defs[expr.name])
    return set()
