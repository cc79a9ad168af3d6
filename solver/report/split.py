"""What ``cpusolve split`` proposes: per migration component, the parts that stop sharing
guests, the migration edges that go, and each part's checked answer and reach."""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.report.records import Result


@dataclass(frozen=True)
class Part:
    hosts: tuple[str, ...]
    machines: int
    #: the part's answer (-cpu), None for a host with no answer even alone
    answer: str | None
    features: int
    #: machines the part's VMs could reach before the split, and after (its own machines)
    reach_before: int
    reach_after: int
    #: the new domain numbers (in ``SplitResult.after``) of the part's hosts
    domains: tuple[int, ...] = ()
    #: SMT threads per core the answer's vCPU topology needs (not part of -cpu)
    threads: int = 1

    def to_dict(self) -> dict:
        return {"hosts": list(self.hosts), "machines": self.machines, "answer": self.answer,
                "features": self.features, "reach_before": self.reach_before, "reach_after": self.reach_after,
                "domains": list(self.domains), "threads": self.threads}


@dataclass(frozen=True)
class ComponentSplit:
    """One weakly connected migration component that had a domain with no answer (or, with
    ``--held-back``, one that a split serves much better)."""

    hosts: tuple[str, ...]
    machines: int
    reason: str  # "infeasible" | "held-back"
    #: "exact" (Z3's optimum over every partition) or "heuristic" (first fit), see README
    method: str
    parts: tuple[Part, ...]
    #: migration edges removed, as the pool states them (directed: both directions listed)
    cut_edges: tuple[tuple[str, str], ...]
    #: migration groups split: (group number, its members by part)
    cut_groups: tuple[tuple[int, tuple[tuple[str, ...], ...]], ...]
    #: host pairs that may no longer migrate (edges and group pairs, each pair once)
    pairs_cut: int
    #: guest features x machines before (0 where a domain had no answer) and after
    value_before: int
    value_after: int
    #: hosts whose kind has no answer even alone (every edge of theirs is cut)
    alone: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"hosts": list(self.hosts), "machines": self.machines, "reason": self.reason,
                "method": self.method, "parts": [p.to_dict() for p in self.parts],
                "cut_edges": [list(e) for e in self.cut_edges],
                "cut_groups": [{"group": g, "into": [list(m) for m in into]} for g, into in self.cut_groups],
                "pairs_cut": self.pairs_cut, "value_before": self.value_before, "value_after": self.value_after,
                "alone": list(self.alone), "notes": list(self.notes)}


@dataclass(frozen=True)
class SplitResult:
    source: str
    components: tuple[ComponentSplit, ...]
    #: the pool as it was, solved, and as split, solved (every answer checked; answers and
    #: conflicts only, without protection lines or shortfalls: ``cpusolve`` on the split
    #: pool prints the full report)
    before: Result
    after: Result
    #: components with a domain that timed out, left as they are
    skipped: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 when every domain of the split pool has an answer, else 1."""
        return self.after.exit_code

    def to_dict(self) -> dict:
        return {"schema": "cpusolve-split/1", "source": self.source,
                "components": [c.to_dict() for c in self.components], "skipped": list(self.skipped),
                "domains_before": len(self.before.domains), "domains_after": len(self.after.domains),
                "without_answer_before": sum(1 for d in self.before.domains if d.guest is None),
                "without_answer_after": sum(1 for d in self.after.domains if d.guest is None)}
