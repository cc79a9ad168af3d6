"""What holds a domain back, and why an infeasible domain has no answer, in operator words."""

from __future__ import annotations

from cpusolve.core.hosts import HostRef
from cpusolve.domains.kinds import HostKinds
from cpusolve.encodings.safety import Obligation, mechanism_features, mechanism_text
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
    n_hosts = sum(len(r) for r in kinds.refs)
    out: list[Conflict] = []
    needs: dict[int, frozenset[str]] = {}  # conflict index -> the mechanism's features
    lacks: dict[str, tuple[HostRef, ...]] = {}
    for key in core:
        if isinstance(key, Lacks):
            hs = refs(key.kinds)
            lacks[key.feature] = hs
            feature = key.feature
            out.append(Conflict("lacks", f"{_names(hs)} cannot expose {feature}",
                                f"give {'them' if len(hs) > 1 else 'it'} {feature} (microcode/BIOS/kernel "
                                f"update) or take {'them' if len(hs) > 1 else 'it'} out of this domain",
                                hs, feature=feature))
        elif isinstance(key, QemuLacks):
            out.append(Conflict("qemu", f"{key.target} has no name for {key.feature}",
                                "use a newer QEMU (requirements.qemu)", feature=key.feature))
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
            ob = key.obligation
            if ob.kind == "mechanism":
                needs[len(out)] = mechanism_features(ob.expr)
            out.append(_obligation(ob, refs(ob.causes), lacks))
    if not out:
        out.append(Conflict("unknown", "no minimal conflict found within the time bound",
                            "raise --timeout"))
    # Name the mechanism's missing feature next to the bug, as an operator reads it
    # ("host skx-07 lacks md-clear (microcode update needed) while mds affects ...").
    absorbed: set[str] = set()
    for i, c in enumerate(out):
        if i in needs:
            needed = needs[i]
            relevant = {f: hs for f, hs in lacks.items() if f in needed}
            # An alternative no host has at all is noise next to one some hosts have.
            fewest = min((len(hs) for hs in relevant.values()), default=0)
            short = [f"{_names(hs)} lack{'s' if len(hs) == 1 else ''} {f}"
                     for f, hs in relevant.items() if len(hs) == fewest or len(hs) < n_hosts]
            if short:
                absorbed |= {f for f in lacks if f in needed}
                out[i] = Conflict(c.kind, f"{'; '.join(short)} (microcode update needed) while {c.text}",
                                  c.fix, c.hosts, c.feature, c.bug)
    return tuple(c for c in out if not (c.kind == "lacks" and c.feature in absorbed))


def _obligation(ob: Obligation, hs: tuple[HostRef, ...], lacks) -> Conflict:
    if ob.kind == "truthful":
        return Conflict("truthful", f"{ob.bug} affects {_names(hs)}: a Linux {ob.kernel} guest must "
                        f"see itself affected by {ob.bug}",
                        f"waive {ob.bug} (requirements.waive) only if you accept that guests will not "
                        f"mitigate it, or take {_names(hs)} out of this domain", hs, bug=ob.bug)
    if ob.kind == "mechanism":
        return Conflict("mechanism", f"{ob.bug} affects {_names(hs)} and guests need "
                        f"{mechanism_text(ob.expr)} to mitigate it",
                        f"update microcode so every host exposes {mechanism_text(ob.expr)}, or use "
                        f"policy compat, or waive {ob.bug}", hs, bug=ob.bug)
    return Conflict("hint", f"{_names(hs)} suffer RSBA: the guest must see rsba",
                    "forbid nothing that rsba needs (arch-capabilities)", hs)
