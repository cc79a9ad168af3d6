"""The split problem, solver-neutral: which hosts of a migration component keep sharing
guests, so that every part has a protected answer, changing the graph as little as possible.

A part is a set of hosts that stays connected by the component's own migration pairs and
whose host kinds hold no known conflict.  Whether a set of kinds has an answer is monotone
(an answer for a set is one for every subset), so the infeasible sets are given by their
minimal members (``conflicts``), and each feasible set's answer size by ``features``.
The objective, in priority order (README "Split"): fewest parts; then the most guest
features x machines; then the fewest migration pairs cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PartitionProblem:
    hosts: tuple[str, ...]
    #: machines each host stands for
    weight: tuple[int, ...]
    #: each host's kind (an index)
    kind: tuple[int, ...]
    #: host index pairs (i < j) with a migration edge either way, or in one group
    pairs: tuple[tuple[int, int], ...]
    #: minimal sets of kinds no part may hold together
    conflicts: tuple[frozenset[int], ...]
    #: the answer's guest feature count for every kind set that has one
    features: Mapping[frozenset[int], int]

    @property
    def kinds(self) -> int:
        return max(self.kind) + 1 if self.kind else 0


@dataclass(frozen=True)
class Score:
    """A partition's objective values (compared as a tuple: larger is better)."""

    parts: int
    value: int  # guest features x machines, summed over parts
    cut: int  # migration pairs between parts

    def key(self) -> tuple[int, int, int]:
        return (-self.parts, self.value, -self.cut)


def parts_of(labels: tuple[int, ...]) -> list[list[int]]:
    """The parts of a labelling, in order of their first host."""
    out: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        out.setdefault(label, []).append(i)
    return list(out.values())


def connected(problem: PartitionProblem, members: list[int]) -> bool:
    inside = set(members)
    seen, todo = {members[0]}, [members[0]]
    adjacent: dict[int, list[int]] = {}
    for a, b in problem.pairs:
        if a in inside and b in inside:
            adjacent.setdefault(a, []).append(b)
            adjacent.setdefault(b, []).append(a)
    while todo:
        for nxt in adjacent.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return len(seen) == len(inside)


def score(problem: PartitionProblem, labels: tuple[int, ...]) -> Score | None:
    """The objective of a labelling, or None when a part is disconnected or has no answer."""
    parts = parts_of(labels)
    value = 0
    for members in parts:
        kinds = frozenset(problem.kind[i] for i in members)
        if kinds not in problem.features or not connected(problem, members):
            return None
        value += problem.features[kinds] * sum(problem.weight[i] for i in members)
    cut = sum(1 for a, b in problem.pairs if labels[a] != labels[b])
    return Score(len(parts), value, cut)


def canonical(labels) -> tuple[int, ...]:
    """Labels renumbered by first appearance (one name per partition)."""
    names: dict[int, int] = {}
    return tuple(names.setdefault(x, len(names)) for x in labels)
