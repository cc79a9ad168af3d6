"""The Python proof of infeasibility (problem.precheck) against Z3 on the same problems.

Every conflict the precheck proves must be a conflict of the explanation problem (Z3 finds
the facts unsatisfiable together) and minimal (Z3 satisfies the rest after dropping any
one); every domain it proves infeasible must be one Z3's optimizer finds infeasible; and
on a diverse fleet it must actually prove most of them (else it only costs time).
"""

from __future__ import annotations

import json
from pathlib import Path

import z3
from hypothesis import HealthCheck, given, settings

from cpusolve.api import load_pool
from cpusolve.backend.terms import boolean, implies
from cpusolve.backend.translate import Terms
from cpusolve.core.pool import Requirements
from cpusolve.domains.graph import domains
from cpusolve.encodings.catalog import catalog
from cpusolve.engine.optimize import optimize
from cpusolve.engine.solve import domain_requirements
from cpusolve.problem.build import explain_problem
from cpusolve.problem.keys import Lacks, Must
from cpusolve.problem.precheck import proven_conflict

from .benchdata import genpool
from .test_properties import pools

CAT = catalog()
ROOT = Path(__file__).resolve().parents[1]


def z3_verdicts(vendor, types, req, core) -> tuple[z3.CheckSatResult, list[z3.CheckSatResult]]:
    """Z3 on the explanation problem with only ``core``'s facts: the verdict, and the
    verdict with each fact left out."""
    problem = explain_problem(CAT, vendor, types, req)
    ctx = z3.Context()
    terms = Terms(problem, ctx)
    solver = z3.Solver(ctx=ctx)
    lits: dict = {}
    for n, (formula, key) in enumerate(problem.constraints):
        term = terms.term(formula)
        if key is not None:
            lit = boolean(f"k{n}", ctx)
            lits.setdefault(key, []).append(lit)
            term = implies(lit, term)
        solver.add(term)

    def check(keys):
        return solver.check([lit for k in keys for lit in lits[k]])
    return check(core), [check(core[:i] + core[i + 1:]) for i in range(len(core))]


def single_vendor(pool):
    """(domain, vendor, its requirements) for every domain of one vendor."""
    for dom in domains(pool):
        vendors = {t.vendor for t in dom.types}
        if len(vendors) == 1:
            yield dom, vendors.pop(), domain_requirements(pool.requirements, dom.types)


def audit(pool) -> dict[str, int]:
    seen = {"proven": 0, "infeasible": 0}
    for dom, vendor, req in single_vendor(pool):
        core = proven_conflict(CAT, vendor, dom.types, req)
        solved = optimize(CAT, vendor, dom.types, req, precheck=False)
        if solved.status == "unsat":
            seen["infeasible"] += 1
        if core is None:
            continue
        seen["proven"] += 1
        assert solved.status == "unsat", (dom.hosts, core)
        whole, without_one = z3_verdicts(vendor, dom.types, req, core)
        assert whole == z3.unsat, core
        assert all(v == z3.sat for v in without_one), (core, without_one)
        # the engine reports exactly this conflict
        assert optimize(CAT, vendor, dom.types, req).core == core
    return seen


def test_diverse_fleet_conflicts_are_proven_minimal_and_most_are_found():
    pool = load_pool(genpool().generate_diverse(n_hosts=400, n_domains=80, seed=3))
    seen = audit(pool)
    assert seen["infeasible"] >= 20, seen  # the pool exercises the path
    assert seen["proven"] >= seen["infeasible"] * 0.7, seen


def test_a_mechanism_whose_dependency_is_lacking_is_proven_through_it():
    """Cascade Lake hosts, one without SPEC_CTRL: eIBRS (ibrs-all) needs SPEC_CTRL, so a
    guest shows none of IBRS, eIBRS and the call-depth tracking a 6.1 guest could use
    against Retbleed.  Only the dependency connects the lacking bit to the obligation, and
    the precheck proves the conflict through it: minimal, checked by Z3 (audit)."""
    pool = load_pool({
        "hosts": {"a": {"cpu": "Cascadelake-Server-v5"},
                  "b": {"cpu": "Cascadelake-Server-v5", "remove": ["spec-ctrl"]}},
        "migration": {"groups": [["a", "b"]]},
        "requirements": {"policy": "compat", "kernels": ["6.1"]},
    })
    seen = audit(pool)
    (dom,) = domains(pool)
    req = domain_requirements(pool.requirements, dom.types)
    core = proven_conflict(CAT, dom.types[0].vendor, dom.types, req)
    assert seen == {"proven": 1, "infeasible": 1} and core is not None, seen
    assert {k.feature for k in core if isinstance(k, Lacks)} == {"spec-ctrl"}, core


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(pools())
def test_random_pools_conflicts_are_proven_minimal(data):
    audit(load_pool(json.loads(json.dumps(data))))


def test_lacking_ssbd_mechanism_is_the_conflict():
    """Two EPYC Rome hosts under compat, one without either SSBD interface: a guest kernel
    cannot run SSBD on both, and the conflict names exactly that."""
    pool = load_pool({
        "hosts": {"a": {"cpu": "EPYC-Rome-v4", "add": ["virt-ssbd"]},
                  "b": {"cpu": "EPYC-Rome-v4", "remove": ["amd-ssbd"]}},
        "migration": {"groups": [["a", "b"]]},
        "requirements": {"policy": "compat"},
    })
    (dom,) = domains(pool)
    req = domain_requirements(pool.requirements, dom.types)
    core = proven_conflict(CAT, dom.types[0].vendor, dom.types, req)
    assert core is not None
    lacks = sorted(k.feature for k in core if isinstance(k, Lacks))
    musts = {k.obligation.bug for k in core if isinstance(k, Must)}
    assert musts == {"spec_store_bypass"}, core
    assert lacks and set(lacks) <= {"amd-ssbd", "virt-ssbd", "ssbd"}, core


def test_feasible_domain_is_not_proven():
    pool = load_pool({"hosts": {"a": {"cpu": "Cascadelake-Server-v5"}, "b": {"cpu": "Icelake-Server-v7"}},
                      "migration": {"groups": [["a", "b"]]}})
    (dom,) = domains(pool)
    req = domain_requirements(pool.requirements or Requirements(), dom.types)
    assert proven_conflict(CAT, "GenuineIntel", dom.types, req) is None


def test_unproven_plausible_domains_are_explained_first_with_the_same_outcome(monkeypatch):
    """A domain the precheck finds plausibly infeasible but cannot prove is explained before
    any optimum is sought (engine.optimize): the outcome is the one the optimum-first path
    gives, and feasible domains are never plausible here.  The precheck proves every
    conflict of this fleet through the dependencies, so it reads without them here, which
    leaves those conflicts to the explanation."""
    from cpusolve.problem import precheck as module
    from cpusolve.problem.precheck import precheck

    monkeypatch.setattr(module._Domain, "closed", lambda self, off, through_dependencies=None: off)
    pool = load_pool(genpool().generate_diverse(n_hosts=400, n_domains=80, seed=3))
    seen = {"explained first": 0, "feasible": 0}
    for dom, vendor, req in single_vendor(pool):
        verdict = precheck(CAT, vendor, dom.types, req)
        first = optimize(CAT, vendor, dom.types, req)
        if first.status == "sat":
            seen["feasible"] += 1
            assert not verdict.plausible, dom.hosts
        if verdict.plausible and verdict.core is None:
            seen["explained first"] += 1
            later = optimize(CAT, vendor, dom.types, req, precheck=False)
            assert (first.status, first.core) == (later.status, later.core), dom.hosts
    assert seen["explained first"] >= 1 and seen["feasible"] >= 10, seen
