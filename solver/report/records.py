"""Results: plain dataclasses whose ``to_dict()`` is the stable JSON schema."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from types import MappingProxyType

from cpusolve.core.guest import GuestCpu, qemu_cpu_arg
from cpusolve.core.hosts import HostRef
from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.spelling import mechanism_features

#: The JSON schema version of ``Result.to_dict()``; bump on incompatible change.
SCHEMA = "cpusolve-result/1"
#: The same with host lists named once (``numbered_host_sets``; writers.json_out).
SCHEMA_2 = "cpusolve-result/2"



@lru_cache(maxsize=4096)
def is_mitigation_flag(name: str) -> bool:
    """Flags that exist to let a guest mitigate CPU bugs: mechanisms and worst-case hints."""
    feat = catalog().features.get(name)
    return name in mechanism_features() or (feat is not None and feat.is_arch_cap and not is_immunity_claim(name))


@lru_cache(maxsize=4096)
def is_immunity_claim(name: str) -> bool:
    """ARCH_CAPABILITIES bits that tell the guest it need not mitigate something."""
    feat = catalog().features.get(name)
    return feat is not None and feat.is_arch_cap and (name.endswith("-no") or name == "skip-l1dfl-vmentry")


_SHARED: ContextVar[dict | None] = ContextVar("cpusolve_shared_ref_lists", default=None)


@contextmanager
def shared_lists():
    """Within this block ``ref_list`` returns one list per tuple of host references.

    A big domain names the same lacking hosts for dozens of features (domains.HostKinds
    shares the tuples); sharing the lists too lets the JSON writer format each once.
    """
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


_NAME = attrgetter("name")


class HostSets:
    """Schema 2's host lists: each distinct list of host references gets a number, in the
    order they are first written; every host's machine count is kept once.  ``marker``
    wraps each number given out (the JSON writer marks a chunk's own numbers, to renumber
    them when the chunks are joined: writers.json_out.JsonChunks)."""

    def __init__(self, marker: type = int) -> None:
        self.sets: list[list[str]] = []
        self.counts: dict[str, int] = {}
        self._index: dict[tuple[str, ...], int] = {}
        self._by_id: dict[int, tuple[object, int]] = {}
        self._marker = marker

    def number(self, refs) -> int:
        hit = self._by_id.get(id(refs))
        if hit is not None and hit[0] is refs:
            return hit[1]
        names = tuple(map(_NAME, refs))
        n = self._index.get(names)
        if n is None:
            n = self._add(names, ((h.name, h.count) for h in refs))
        self._by_id[id(refs)] = (refs, n)  # holding refs keeps its id unique
        return n

    def number_names(self, names: list[str], counts: Mapping[str, int]) -> int:
        """The number of a list of host names (``counts`` has their machine counts)."""
        key = tuple(names)
        n = self._index.get(key)
        if n is None:
            n = self._add(key, ((name, counts[name]) for name in names))
        return n

    def _add(self, names: tuple[str, ...], counts) -> int:
        """The next number, for a list not seen before; ``counts``: (name, machines) pairs."""
        n = self._index[names] = self._marker(len(self.sets))
        self.sets.append(list(names))
        self.counts.update(counts)
        return n


_SETS: ContextVar[HostSets | None] = ContextVar("cpusolve_host_sets", default=None)


@contextmanager
def numbered_host_sets(sets: HostSets | None = None):
    """Within this block ``to_dict()`` writes schema 2: a host list is its number in the
    yielded :class:`HostSets` (``sets``, or a new one)."""
    sets = HostSets() if sets is None else sets
    token = _SETS.set(sets)
    try:
        yield sets
    finally:
        _SETS.reset(token)


def ref_list(refs) -> list[dict] | int:
    """Host references as JSON objects (schema 1), or their host-set number (schema 2)."""
    sets = _SETS.get()
    if sets is not None:
        return sets.number(refs)
    memo = _SHARED.get()
    if memo is None:
        return [h.to_dict() for h in refs]
    hit = memo.get(id(refs))
    if hit is None or hit[0] is not refs:
        hit = memo[id(refs)] = (refs, [h.to_dict() for h in refs])  # holding refs keeps its id
    return hit[1]


@dataclass(frozen=True)
class Conflict:
    """One named fact of a minimal infeasible set."""

    kind: str  # "lacks", "qemu", "require", "forbid", "min_model", "vendor", "unprotected", "unknown"
    text: str
    fix: str
    hosts: tuple[HostRef, ...] = ()
    feature: str | None = None
    bug: str | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text, "fix": self.fix,
                "hosts": ref_list(self.hosts), "feature": self.feature, "bug": self.bug}


@dataclass(frozen=True)
class Shortfall:
    """A feature some hosts of the domain have and others lack."""

    feature: str
    lacking: tuple[HostRef, ...]
    having: int  # machines that have it

    def to_dict(self) -> dict:
        return {"feature": self.feature, "lacking": ref_list(self.lacking),
                "having_count": self.having}


@dataclass(frozen=True)
class DomainResult:
    index: int
    hosts: tuple[HostRef, ...]
    starts: tuple[str, ...]
    vendor: str | None
    status: str  # "ok" | "ok-waived" | "infeasible" | "timeout"
    guest: GuestCpu | None = None
    features: frozenset[str] = frozenset()
    mitigations: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()  # "*-no" immunity bits shown, each checked against every host
    guest_bugs: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))  # kernel -> bugs
    host_bugs: tuple[str, ...] = ()
    waived: tuple[str, ...] = ()
    shortfalls: tuple[Shortfall, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    notes: tuple[str, ...] = ()
    better: tuple = ()  # blockers.BetterModel: newer models out of reach and why
    safety_costs: tuple = ()  # blockers.SafetyCost: what protection cost, and which host/bug
    #: report.protection.Protection: how the guest is protected on each host kind, per bug
    protection: tuple = ()
    solve_ms: float = 0.0
    #: the QEMU and libvirt name tables the answer was made for (None: current QEMU, no libvirt)
    qemu_target: str | None = None
    libvirt: str | None = None

    @property
    def solved(self) -> bool:
        return self.status in ("ok", "ok-waived")

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "hosts": ref_list(self.hosts),
            "machines": sum(h.count for h in self.hosts),
            "starts": list(self.starts),
            "vendor": self.vendor,
            "status": self.status,
            "guest": self.guest.to_dict() if self.guest else None,
            "qemu": qemu_cpu_arg(self.guest) if self.guest else None,
            "features": sorted(self.features),
            "mitigations": list(self.mitigations),
            "immunity_claims": list(self.claims),
            "guest_bugs": {k: list(v) for k, v in self.guest_bugs.items()},
            "host_bugs": list(self.host_bugs),
            "waived": list(self.waived),
            "shortfalls": [s.to_dict() for s in self.shortfalls],
            "conflicts": [c.to_dict() for c in self.conflicts],
            "notes": list(self.notes),
            "better_models": [b.to_dict() for b in self.better],
            "safety_costs": [c.to_dict() for c in self.safety_costs],
            "protection": [p.to_dict() for p in self.protection],
            "targets": {"qemu": self.qemu_target, "libvirt": self.libvirt},
        }


@dataclass(frozen=True)
class Result:
    source: str
    requirements: dict
    domains: tuple[DomainResult, ...]
    directed: bool = False
    #: the migration graph (networkx) and groups, for pictures; see edges()
    graph: object = field(default=None, repr=False, compare=False)
    groups: tuple[tuple[str, ...], ...] = field(default=(), repr=False, compare=False)
    whatif: dict | None = None  # --without/--add: what was asked ({"without": [...], "add": [...]})
    changes: tuple | None = None  # report.plans.Change for each answer that changed
    suggestions: tuple | None = None  # report.plans.Suggestion (--suggest K)

    @property
    def exit_code(self) -> int:
        return 0 if all(d.solved for d in self.domains) else 1

    def edges(self) -> list[tuple[str, str]]:
        """The explicit migration edges, sorted; an undirected pool's once each (groups are
        ``groups``).  Computed on demand: only pictures need them."""
        if self.graph is None:
            return []
        if self.directed:
            return sorted(self.graph.edges())
        return sorted({(a, b) if a <= b else (b, a) for a, b in self.graph.edges()})

    def to_dict(self, domains: bool = True) -> dict:
        """The schema-1 document (``domains=False``: without its ``domains``, which the JSON
        writer may have written already)."""
        out = {"schema": SCHEMA, "source": self.source, "requirements": self.requirements}
        if domains:
            out["domains"] = [d.to_dict() for d in self.domains]
        if self.whatif is not None:
            out["whatif"] = self.whatif | {"changes": [c.to_dict() for c in self.changes or []]}
        if self.suggestions is not None:
            out["suggestions"] = [s.to_dict() for s in self.suggestions]
        return out
