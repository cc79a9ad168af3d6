"""A domain's hosts grouped by kind, for reports: each list of host references built once."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter

from cpusolve.core.hosts import HostFacts, HostRef


@dataclass
class HostKinds:
    """A domain's hosts by kind, as report references.

    A big domain's report names the hosts lacking each of dozens of features; most
    features are lacked by the same few kinds, so each list is built once per set of kinds.
    """

    types: tuple[HostFacts, ...]
    refs: tuple[tuple[HostRef, ...], ...]  # per kind, in ``types`` order, hosts by name
    _memo: dict[tuple[int, ...], tuple[HostRef, ...]] = field(default_factory=dict, repr=False)
    _lacks: dict[str, tuple[HostRef, ...]] | None = field(default=None, repr=False)

    @property
    def machines(self) -> int:
        return sum(r.count for refs in self.refs for r in refs)

    def names(self, kind: int) -> list[str]:
        return [r.name for r in self.refs[kind]]

    def of(self, kinds: tuple[int, ...]) -> tuple[HostRef, ...]:
        """The hosts of these kinds, by name."""
        out = self._memo.get(kinds)
        if out is None:
            if len(kinds) == 1:
                out = self.refs[kinds[0]]
            else:
                out = tuple(sorted(chain.from_iterable(self.refs[i] for i in kinds), key=attrgetter("name")))
            self._memo[kinds] = out
        return out

    def lacking(self, feature: str) -> tuple[HostRef, ...]:
        """The hosts that cannot expose ``feature``, by name."""
        if self._lacks is None:
            # Inverted once: each kind lists what it lacks of the features some kind has.
            union = frozenset.union(*(t.features for t in self.types))
            by_feature: dict[str, list[int]] = {}
            for i, t in enumerate(self.types):
                for f in union - t.features:
                    by_feature.setdefault(f, []).append(i)
            self._lacks = {f: self.of(tuple(kinds)) for f, kinds in by_feature.items()}
        refs = self._lacks.get(feature)
        if refs is None:  # every kind has it, or none does
            return () if feature in self.types[0].features else self.of(tuple(range(len(self.types))))
        return refs


def type_order(facts: HostFacts) -> tuple:
    """A total order of host kinds, so that equal input gives byte-identical output
    (remembered on the instance: every domain of a host kind sorts it again).

    It reads every field equality compares: kinds that show a guest the same identity,
    features and bugs but differ in their kernel, SMT, TSX, silicon or microcode (a fleet's
    kernel rollout) are different kinds, and a tie between them left their order in a
    domain, and so which host a conflict names, to the set they were gathered in."""
    key = facts.__dict__.get("_type_order")
    if key is None:
        key = facts.__dict__["_type_order"] = (
            facts.vendor, facts.fms, sorted(facts.features), sorted(facts.bugs), sorted(facts.silicon),
            sorted(facts.internal_bugs), facts.kernel, facts.tsx, facts.smt, sorted(facts.microcode_fixes),
            (facts.qemu is not None, facts.qemu or ""), (facts.libvirt is not None, facts.libvirt or ""))
    return key
