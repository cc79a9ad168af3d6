"""The ideal-guest shortcut (problem.ideal) finds Z3's optimum, or leaves the domain to Z3.

For every single-vendor domain of diverse fleets and random pools, reduced and unreduced,
under both policies and both kernel sets: where :func:`ideal_optimum` answers, its answer is
the Z3 backend's optimum (the optimum is unique, so equal means the same guest CPU); where
it does not, Z3's optimum indeed differs from the ideal assignment or has none.  The
fleets must exercise both outcomes, or agreement says little.
"""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings

from cpusolve.api import load_pool
from cpusolve.backend import solve as z3_backend
from cpusolve.domains.graph import domains
from cpusolve.encodings.catalog import HINT_BITS, catalog
from cpusolve.engine.optimize import optimize
from cpusolve.engine.solve import domain_requirements
from cpusolve.problem.build import optimum_problem
from cpusolve.problem.formula import SETTINGS
from cpusolve.problem.ideal import forced_off, ideal_optimum

from .benchdata import genpool
from .test_properties import pools

CAT = catalog()


def compare(pool, reduce: bool = True) -> dict[str, int]:
    seen = {"answered": 0, "left": 0, "forced": 0}
    for dom in domains(pool):
        vendors = {t.vendor for t in dom.types}
        if len(vendors) != 1:
            continue
        req = domain_requirements(pool.requirements, dom.types)
        problem = optimum_problem(CAT, vendors.pop(), dom.types, req, reduce=reduce)
        mine = ideal_optimum(problem)
        z3 = z3_backend.optimum(problem, 30)
        off = forced_off(problem)
        if mine is not None:
            seen["answered"] += 1
            seen["forced"] += bool(off & set(problem.variables))
            assert mine == z3, (dom.hosts, mine, z3)
        else:
            seen["left"] += 1
            if z3.status == "sat":
                ideal = problem.fixed | frozenset(f for f in problem.variables
                                                  if f not in HINT_BITS and f not in SETTINGS and f not in off)
                assert z3.choice.features != ideal, (dom.hosts, z3)  # the shortcut missed one it could prove
    return seen


def test_diverse_fleets_agree_with_z3():
    seen = {"answered": 0, "left": 0, "forced": 0}
    for seed, policy in ((3, "strict"), (4, "compat")):
        data = genpool().generate_diverse(n_hosts=300, n_domains=60, seed=seed)
        data.setdefault("requirements", {})["policy"] = policy
        pool = load_pool(data)
        for k, v in compare(pool).items():
            seen[k] += v
    # "forced": answered with features no guest can show left off (ideal.forced_off)
    assert seen["answered"] >= 20 and seen["left"] >= 5 and seen["forced"] >= 5, seen


def test_unreduced_problems_agree_with_z3():
    pool = load_pool(genpool().generate_diverse(n_hosts=150, n_domains=30, seed=7))
    seen = compare(pool, reduce=False)
    assert seen["answered"] >= 5, seen


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(pools())
def test_random_pools_agree_with_z3(data):
    compare(load_pool(json.loads(json.dumps(data))))


def test_the_engine_gives_the_same_outcome_either_way():
    pool = load_pool(genpool().generate_diverse(n_hosts=150, n_domains=30, seed=9))
    both = 0
    for dom in domains(pool):
        vendors = {t.vendor for t in dom.types}
        if len(vendors) != 1:
            continue
        req = domain_requirements(pool.requirements, dom.types)
        vendor = vendors.pop()
        a = optimize(CAT, vendor, dom.types, req)
        b = optimize(CAT, vendor, dom.types, req, ideal=False)
        assert dataclasses.replace(a, millis=0) == dataclasses.replace(b, millis=0)
        both += a.status == "sat"
    assert both >= 5


def test_a_hint_bit_the_hosts_offer_is_hidden_as_z3_hides_it():
    """rsba (a worst-case hint) is a variable where every host has it; the ideal guest hides
    it (objective "hints"), and so does Z3."""
    seen = 0
    for models in (["Cascadelake-Server-v5"] * 2, ["Skylake-Server-v4", "Cascadelake-Server-v5"],
                   ["Broadwell-v4", "Skylake-Server-v4"]):
        ucode = ["rsba", "arch-capabilities", "md-clear", "ssbd", "stibp", "flush-l1d"]
        pool = load_pool({"hosts": {f"h{i}": {"cpu": m, "add": ucode} for i, m in enumerate(models)}})
        (dom,) = domains(pool)
        req = domain_requirements(pool.requirements, dom.types)
        problem = optimum_problem(CAT, dom.types[0].vendor, dom.types, req)
        assert "rsba" in problem.variables
        mine = ideal_optimum(problem)
        assert mine is not None and mine == z3_backend.optimum(problem, 30)
        assert "rsba" not in mine.choice.features
        seen += 1
    assert seen == 3


def test_the_choice_bits_are_those_of_every_choice_listed_one_by_one():
    """The selectors' bit sets made with shifts are the ones a loop over every (model,
    identity, own) choice gives, and each bit decodes to its choice."""
    from types import SimpleNamespace

    from cpusolve.problem.formula import OWN_FMS, fms_sel, model_sel
    from cpusolve.problem.ideal import _choice, _choices

    for n_models, n_ids in [(1, 1), (3, 2), (2, 5), (7, 3), (0, 4), (4, 0)]:
        models = [SimpleNamespace(name=f"M{i}") for i in range(n_models)]
        ids = [(6, 85, j) for j in range(n_ids)]
        picks = [(m, k, own) for m in models for k in ids for own in (True, False)]
        expected: dict = {}
        for i, (m, k, own) in enumerate(picks):
            for sel in (model_sel(m.name), fms_sel(k), *((OWN_FMS,) if own else ())):
                expected[sel] = expected.get(sel, 0) | (1 << i)
        got, n = _choices(models, ids)
        assert n == len(picks)
        assert {s: b for s, b in got.items() if b} == expected
        assert [_choice(models, ids, i) for i in range(n)] == picks
