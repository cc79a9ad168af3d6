"""What a backend answers about a problem, in the domain's terms, and the guest CPU it names.

A backend is anything with ``optimum(problem, timeout) -> Optimum`` and
``minimal_core(problem, timeout) -> Core`` (:class:`Backend`): ``cpusolve.backend.solve``
(Z3) in the product, an exhaustive plain-Python search in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cpusolve.core.guest import GuestCpu
from cpusolve.encodings.catalog import Catalog
from cpusolve.encodings.rules import SMT
from cpusolve.problem.keys import FactKey

if TYPE_CHECKING:
    from cpusolve.problem.build import Problem


@dataclass(frozen=True)
class Choice:
    """A backend's answer: the model (None where the problem chooses none), the visible
    features and the family/model/stepping shown."""

    model: str | None
    features: frozenset[str]
    identity: tuple[int, int, int]


def guest_of(cat: Catalog, choice: Choice) -> GuestCpu:
    """The guest CPU a choice describes: its model plus flags, the f/m/s where it differs,
    and the topology setting."""
    model = cat.model(choice.model)
    features = choice.features - {SMT}
    return GuestCpu(model=model.name, plus=tuple(sorted(features - model.features)),
                    minus=tuple(sorted(model.features - features)),
                    fms=None if choice.identity == model.fms else choice.identity,
                    threads=2 if SMT in choice.features else 1)


@dataclass(frozen=True)
class Optimum:
    status: str  # "sat" | "unsat" | "timeout"
    choice: Choice | None = None


@dataclass(frozen=True)
class Core:
    #: "unsat": ``keys`` cannot all hold (minimal unless time ran out while minimising);
    #: "sat": the explanation's facts hold together; "timeout"
    status: str
    keys: tuple[FactKey, ...] = ()


class Backend(Protocol):
    def optimum(self, problem: Problem, timeout: float) -> Optimum: ...
    def minimal_core(self, problem: Problem, timeout: float) -> Core: ...
