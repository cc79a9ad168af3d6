"""What holds a solved domain back: better models it misses, and what safety cost it.

Computed concretely (no Z3) from the checked answer, so it explains the answer rather than
re-deriving it: which newer catalog models are out of reach and which hosts lack what they
need, and for every safety constraint that cost something (a feature withheld, a hint bit
added, another family/model/stepping shown) the host and bug that caused it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache, lru_cache

from cpusolve.core.guest import GuestCpu
from cpusolve.core.hosts import HostRef
from cpusolve.core.pool import Requirements
from cpusolve.domains.kinds import HostKinds
from cpusolve.encodings import targets
from cpusolve.encodings.catalog import HINT_BITS, Catalog, catalog
from cpusolve.encodings.safety import obligations
from cpusolve.report.records import ref_list

MAX_BETTER = 3


@dataclass(frozen=True)
class Missing:
    feature: str
    lacking: tuple[HostRef, ...]  # empty: no host lacks it (withheld for safety or forbidden)
    reason: str

    def to_dict(self) -> dict:
        return {"feature": self.feature, "lacking": ref_list(self.lacking), "reason": self.reason}


@dataclass(frozen=True)
class BetterModel:
    model: str
    missing: tuple[Missing, ...]

    def to_dict(self) -> dict:
        return {"model": self.model, "missing": [m.to_dict() for m in self.missing]}


@dataclass(frozen=True)
class SafetyCost:
    kind: str  # "withheld" | "hint" | "fms"
    text: str
    feature: str | None = None
    bug: str | None = None
    hosts: tuple[HostRef, ...] = ()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text, "feature": self.feature, "bug": self.bug,
                "hosts": ref_list(self.hosts)}


def reachable_set(cat: Catalog, types, req: Requirements) -> frozenset[str]:
    """The largest guest feature set ignoring safety: common, allowed, dependency-closed."""
    common = frozenset.intersection(*(t.features for t in types)) & cat.guest_features
    return _closed(cat, common - req.forbid)


@lru_cache(maxsize=4096)
def _closed(cat: Catalog, features: frozenset[str]) -> frozenset[str]:
    return frozenset(cat.without_unmet(features))


@lru_cache(maxsize=4096)
def _failing(types, req: Requirements, guest: GuestCpu, features: frozenset[str],
             reach: frozenset[str]) -> tuple[tuple[tuple[str, int], ...], tuple[int, ...]]:
    """Which obligation each reachable-but-withheld feature would break, and which ones the
    model's own family/model/stepping would: a function of the problem, shared by every
    domain of these host kinds."""
    obs = obligations(guest.identity()[0], types, req.kernels, req.policy, req.waive)
    withheld = []
    for f in sorted(reach - features - HINT_BITS):
        view = guest.view(features | {f})
        first = next((i for i, ob in enumerate(obs) if not ob.holds(view)), None)
        if first is not None:
            withheld.append((f, first))
    hidden: tuple[int, ...] = ()
    if guest.fms is not None:
        view = guest.view(features, catalog().model(guest.model).fms)
        hidden = tuple(i for i, ob in enumerate(obs) if not ob.holds(view))
    return tuple(withheld), hidden


def safety_costs(cat: Catalog, kinds: HostKinds, req: Requirements, guest: GuestCpu,
                 features: frozenset[str], reach: frozenset[str]) -> tuple[SafetyCost, ...]:
    obs = obligations(guest.identity()[0], kinds.types, req.kernels, req.policy, req.waive)
    withheld, hidden_by_own = _failing(kinds.types, req, guest, features, reach)
    out: list[SafetyCost] = []
    for f, i in withheld:
        ob = obs[i]
        hs = kinds.of(ob.causes)
        out.append(SafetyCost("withheld", f"{f} withheld: {ob.describe()} "
                              f"({', '.join(h.name for h in hs)})", f, ob.bug, hs))
    for f in sorted(features & HINT_BITS):
        hs = kinds.of(tuple(i for i, t in enumerate(kinds.types) if f in t.features))
        out.append(SafetyCost("hint", f"{f} shown because {', '.join(h.name for h in hs)} suffer it", f,
                              hosts=hs))
    if hidden_by_own:
        own = cat.model(guest.model).fms
        hidden: dict[tuple, list[str]] = {}
        for ob in (obs[i] for i in hidden_by_own):
            hidden.setdefault((ob.bug, ob.causes), []).append(ob.kernel)
        for (bug, causes), kernels in hidden.items():
            hs = kinds.of(causes)
            out.append(SafetyCost("fms", f"family/model/stepping {own[0]}/{own[1]}/{own[2]} of {guest.model} "
                                  f"would hide {bug} (Linux {', '.join(kernels)}) on "
                                  f"{', '.join(h.name for h in hs)}", bug=bug, hosts=hs))
    return tuple(dict.fromkeys(out))


@cache
def _guest_features(model) -> frozenset[str]:
    """The model's features a guest can be shown (asked for every newer model by every
    answer's better-model list)."""
    return frozenset(model.features & catalog().guest_features)


@lru_cache(maxsize=4096)
def _nearest_newer(model: str, features: frozenset[str], qemu: str | None,
                   libvirt: str | None = None) -> tuple[tuple[str, frozenset[str]], ...]:
    """The newer, bigger catalog models that need the fewest features more than ``features``."""
    candidates = []
    for m, shown in _newer_bigger(model, qemu, libvirt):
        need = shown - features
        if need:
            candidates.append((len(need), -m.index, m.name, need))
    candidates.sort(key=lambda c: (c[0], c[1]))
    return tuple((name, need) for _, _, name, need in candidates[:MAX_BETTER])


@lru_cache(maxsize=1024)
def _newer_bigger(model: str, qemu: str | None, libvirt: str | None) -> tuple:
    """The catalog models the target knows that are newer than ``model`` (same vendor) and
    show more guest features, with their guest features (every answer on ``model`` asks)."""
    cat = catalog()
    known = targets.target(qemu, libvirt).models
    chosen = cat.model(model)
    size = len(_guest_features(chosen))
    return tuple((m, _guest_features(m) - HINT_BITS) for m in cat.models
                 if m.vendor == chosen.vendor and m.index > chosen.index and m.name in known
                 and len(_guest_features(m)) > size)  # newer but not bigger (an Atom after a Xeon) is not "better"


def better_models(cat: Catalog, kinds: HostKinds, req: Requirements, guest: GuestCpu,
                  features: frozenset[str], safe_reach: frozenset[str]) -> tuple[BetterModel, ...]:
    """The newer catalog models nearest to being reachable, and what each one misses."""
    out = []
    for name, need in _nearest_newer(guest.model, features, req.qemu, req.libvirt):
        missing = []
        for f in sorted(need):
            refs = kinds.lacking(f)
            if refs:
                reason = "hosts lack it"
            elif f in req.forbid:
                reason = "forbidden by requirements"
            elif f in safe_reach:
                reason = "withheld for guest safety"
            else:
                reason = "a feature it needs is missing"
            missing.append(Missing(f, refs, reason))
        out.append(BetterModel(name, tuple(missing)))
    return tuple(out)


def with_blockers(result, cat: Catalog, kinds: HostKinds, req: Requirements):
    """The domain result with better models and safety costs filled in."""
    if result.guest is None:
        return result
    reach = reachable_set(cat, kinds.types, req)
    return dataclasses.replace(
        result,
        better=better_models(cat, kinds, req, result.guest, result.features, reach),
        safety_costs=safety_costs(cat, kinds, req, result.guest, result.features, reach))
