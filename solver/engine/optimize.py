"""One domain's answer: build its problem, solve it, and explain it when it has none."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cpusolve.backend import solve as z3_backend
from cpusolve.core.guest import GuestCpu
from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Requirements
from cpusolve.encodings.catalog import Catalog
from cpusolve.problem.build import explain_problem, nearest_problem, optimum_problem
from cpusolve.problem.ideal import ideal_optimum
from cpusolve.problem.keys import FactKey
from cpusolve.problem.precheck import precheck as prove
from cpusolve.problem.solution import Backend, guest_of

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    status: str  # "sat" | "unsat" | "timeout"
    guest: GuestCpu | None = None
    features: frozenset[str] = frozenset()
    #: the facts of a minimal conflict (unsat); empty when none was found in time
    core: tuple[FactKey, ...] = ()
    millis: float = 0.0


def optimize(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements,
             timeout: float = DEFAULT_TIMEOUT_S, reduce: bool = True,
             backend: Backend = z3_backend, precheck: bool = True, ideal: bool = True) -> Outcome:
    """The domain's optimum (problem.objectives.OPTIMUM), or why there is none.

    ``reduce=False`` solves the unreduced problem (every model, identity and feature a
    variable): the same optimum, slower; tests compare the two.  ``precheck`` first tries
    to prove the domain infeasible without a solver (problem.precheck); ``False`` leaves
    every domain to the backend (tests compare the two).  ``ideal`` first tries the ideal
    guest (problem.ideal: every objective-1-3 literal met, the rest enumerated); ``False``
    asks the backend for every optimum (tests compare the two).
    """
    start = time.perf_counter()
    budget = timeout
    if precheck:
        verdict = prove(cat, vendor, types, req)
        if verdict.core is not None:
            return Outcome("unsat", core=verdict.core, millis=(time.perf_counter() - start) * 1000)
        if verdict.plausible:
            # Most likely infeasible (problem.precheck.Verdict): the explanation first, which
            # says "sat" where the domain has an answer after all (then the optimum, in the
            # time left); the explanation is the same either way (a fresh context each).
            core = backend.minimal_core(explain_problem(cat, vendor, types, req), timeout)
            if core.status != "sat":
                return Outcome(core.status, core=core.keys, millis=(time.perf_counter() - start) * 1000)
            budget = _time_left(start, timeout)
    problem = optimum_problem(cat, vendor, types, req, reduce=reduce)
    answer = (ideal_optimum(problem) if ideal else None) or backend.optimum(problem, budget)
    elapsed = time.perf_counter() - start
    if answer.status == "unsat":
        core = explain(cat, vendor, types, req, _time_left(start, timeout), backend)
        return Outcome(core.status, core=core.core, millis=(time.perf_counter() - start) * 1000)
    if answer.status != "sat":
        return Outcome("timeout", millis=elapsed * 1000)
    return Outcome("sat", guest=guest_of(cat, answer.choice), features=answer.choice.features,
                   millis=(time.perf_counter() - start) * 1000)


def _time_left(start: float, timeout: float) -> float:
    """What is left of a domain's time bound for a second solver call (at least a second,
    or the whole bound where that is shorter)."""
    return max(timeout - (time.perf_counter() - start), min(1.0, timeout))


def explain(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements, timeout: float,
            backend: Backend = z3_backend) -> Outcome:
    """A minimal set of named facts that cannot all hold."""
    core = backend.minimal_core(explain_problem(cat, vendor, types, req), timeout)
    if core.status == "timeout":
        return Outcome("timeout")
    return Outcome("unsat", core=core.keys)


def nearest(cat: Catalog, vendor: str, types: tuple[HostFacts, ...], req: Requirements, current: GuestCpu,
            timeout: float = DEFAULT_TIMEOUT_S, backend: Backend = z3_backend) -> GuestCpu | None:
    """The safe, runnable guest CPU on ``current``'s model that changes the fewest visible bits.

    Used to repair a running guest: keep its model (a model change is a bigger step for an
    operator), flip as few features as possible, keep its family/model/stepping if it can.
    """
    problem = nearest_problem(cat, vendor, types, req, current)
    if not problem.models:
        return None
    answer = backend.optimum(problem, timeout)
    return guest_of(cat, answer.choice) if answer.status == "sat" else None
