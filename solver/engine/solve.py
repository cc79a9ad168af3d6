"""The engine: solve every distinct migration domain of a pool, checked, with one cache.

Each domain goes through the pipeline in order: its problem is solved (backend), the answer
re-checked by the independent checker (verify), and its report assembled (report).  Domains
that pose the same problem share one solve.
"""

from __future__ import annotations

import dataclasses
from functools import cache

from cpusolve.core.pool import POLICIES, Pool, Requirements
from cpusolve.domains.graph import Domain, domains
from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.rules import CpuView, load_rules
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S, Outcome, optimize
from cpusolve.errors import InputError, InternalError, check_timeout
from cpusolve.report.blockers import with_blockers
from cpusolve.report.explain import conflicts_text, shortfalls
from cpusolve.report.records import (
    Conflict,
    DomainResult,
    Result,
    is_immunity_claim,
    is_mitigation_flag,
)
from cpusolve.verify.checker import check_answer


def solve(pool: Pool, requirements: Requirements | None = None,
          policy: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
          cache: dict | None = None, jobs: int = 1) -> Result:
    """Solve every distinct migration domain of ``pool``; every answer is re-checked.

    ``cache`` (a dict the caller keeps) maps a domain's host kinds and requirements to its
    solver outcome, so repeated solves of a changing pool redo only the changed domains.
    ``jobs`` > 1 solves distinct problems in that many worker processes first; the answers,
    their checks and the report are then made here, in domain order, exactly as with one.
    """
    check_timeout(timeout)
    req = requirements or pool.requirements
    if policy is not None:
        if policy not in POLICIES:
            raise InputError(f"policy must be one of {', '.join(POLICIES)}, not '{policy}'")
        req = dataclasses.replace(req, policy=policy)
    cat = catalog()
    reuse = cache is not None
    cache = {} if cache is None else cache
    doms = domains(pool)
    if jobs > 1:
        _solve_in_parallel(cat, doms, req, timeout, cache, jobs)
    results = []
    used = set()
    for index, dom in enumerate(doms, start=1):
        if not reuse:
            results.append(_solve_domain(pool, dom, index, req, timeout, cache, cat))
            continue
        # A kept cache also keeps whole domain reports: after a change to a big pool only
        # the domains whose hosts changed are rebuilt (a report is a function of these).
        key = ("domain", dom.starts, tuple(pool.hosts[h] for h in dom.hosts), req, timeout)
        used.add(key)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = _solve_domain(pool, dom, index, req, timeout, cache, cat)
        results.append(hit if hit.index == index else dataclasses.replace(hit, index=index))
    if reuse:  # forget the reports of domains the pool no longer has
        for key in [k for k in cache if k[0] == "domain" and k not in used]:
            del cache[key]
    return Result(source=pool.source, requirements=req.to_dict(), domains=results,
                  directed=pool.directed, graph=pool.graph, groups=pool.groups)


def _optimize_task(args) -> Outcome:
    vendor, types, req, timeout = args
    return optimize(catalog(), vendor, types, req, timeout)


def _solve_in_parallel(cat, doms, req: Requirements, timeout: float, cache: dict, jobs: int) -> None:
    """Fill ``cache`` with one outcome per distinct problem, solved by worker processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    todo: dict[tuple, tuple] = {}
    for dom in doms:
        vendors = {t.vendor for t in dom.types}
        if len(vendors) != 1 or (req.vendor and req.vendor not in vendors):
            continue
        vendor = next(iter(vendors))
        key = ("problem", *problem_key(cat, vendor, dom.types, req, timeout))
        if key not in cache and ("types", vendor, dom.types, req, timeout) not in cache:
            todo.setdefault(key, (vendor, dom.types, req, timeout))
    if len(todo) < 2:
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        for (key, args), outcome in zip(todo.items(), pool.map(_optimize_task, todo.values(), chunksize=4),
                                        strict=True):
            cache[key] = outcome
            cache[("types", args[0], args[1], req, timeout)] = outcome


def problem_key(cat, vendor: str, types, req: Requirements, timeout: float) -> tuple:
    """What the optimizer's problem depends on, and nothing else.

    Domains of different host kinds often pose the same problem: the same common features,
    bugs and family/model/stepping candidates.  Their answer is the same, so it is solved
    once (an infeasible domain is still explained on its own hosts).
    """
    # The encoding reads the hosts' common features (its variables, and whether every host
    # can show rsba), the union of their bugs and their family/model/stepping candidates.
    common = frozenset.intersection(*(t.features for t in types))
    return (vendor, common, frozenset().union(*(t.bugs for t in types)),
            frozenset(t.fms for t in types), req, timeout)


def _cached_optimize(cat, vendor: str, types, req: Requirements, timeout: float, cache: dict) -> Outcome:
    by_types = ("types", vendor, types, req, timeout)
    if by_types in cache:
        return cache[by_types]
    by_problem = ("problem", *problem_key(cat, vendor, types, req, timeout))
    hit = cache.get(by_problem)
    if hit is not None and hit.status == "sat":
        outcome = hit
    else:
        outcome = optimize(cat, vendor, types, req, timeout)
        cache[by_problem] = outcome
    cache[by_types] = outcome
    return outcome


@cache
def guest_sees(view: CpuView, kernel: str) -> tuple[str, ...]:
    """The bugs a Linux guest on ``view`` marks itself affected by (many domains share a guest)."""
    return tuple(b for b, hit in load_rules(kernel).affected(view).items() if hit)


def _solve_domain(pool: Pool, dom: Domain, index: int, req: Requirements, timeout: float,
                  cache: dict, cat) -> DomainResult:
    kinds = dom.kinds(pool)
    hosts = kinds.of(tuple(range(len(dom.types))))  # every host, by name
    base = DomainResult(index=index, hosts=hosts, starts=dom.starts, vendor=None, status="infeasible")
    vendors = sorted({t.vendor for t in dom.types})
    if len(vendors) > 1:
        by_vendor = {v: [h for h in dom.hosts if pool.hosts[h].facts.vendor == v] for v in vendors}
        text = "mixed vendors: " + "; ".join(
            f"{v}: {', '.join(hs)}" for v, hs in by_vendor.items())
        base.conflicts = (Conflict("vendor", text, "live migration across CPU vendors is refused: "
                                   "split the domain by vendor", hosts),)
        return base
    vendor = vendors[0]
    base.vendor = vendor
    base.host_bugs = tuple(sorted(set().union(*(t.bugs for t in dom.types))))
    base.waived = tuple(sorted(req.waive & set(base.host_bugs)))
    base.shortfalls = shortfalls(kinds, cat)
    if req.vendor and req.vendor != vendor:
        base.conflicts = (Conflict("vendor", f"requirement vendor {req.vendor}, but the hosts are {vendor}",
                                   "drop requirements.vendor or solve another pool", hosts),)
        return base
    outcome = _cached_optimize(cat, vendor, dom.types, req, timeout, cache)
    base.solve_ms = outcome.millis
    if outcome.status == "timeout":
        base.status = "timeout"
        base.notes = (f"Z3 did not finish within {timeout:g} s (--timeout)",)
        return base
    if outcome.status == "unsat":
        base.conflicts = conflicts_text(kinds, outcome.core)
        return base
    guest = outcome.guest
    checked = ("checked", dom.types, req, guest)  # the verdict is a function of these alone
    if checked not in cache:
        labels = [", ".join(kinds.names(i)) for i in range(len(dom.types))]
        problems = check_answer(cat, dom.types, req, guest, labels)
        if problems:
            raise InternalError(f"checker rejected the answer for domain {index} ({guest.model}): "
                                + "; ".join(problems))
        cache[checked] = True
    view = guest.view()
    fam, mod, step = view.family, view.model, view.stepping
    base.guest = guest
    base.features = guest.visible()
    base.status = "ok-waived" if base.waived else "ok"
    base.mitigations = tuple(f"+{f}" for f in guest.plus if is_mitigation_flag(f))
    base.claims = tuple(sorted(f for f in base.features if is_immunity_claim(f)))
    base.guest_bugs = {k: guest_sees(view, k) for k in req.kernels}
    notes = []
    if guest.fms is not None:
        notes.append(f"shows family/model/stepping {fam}/{mod}/{step} instead of "
                     f"{cat.model(guest.model).family}/{cat.model(guest.model).model}/"
                     f"{cat.model(guest.model).stepping} so that guests still mitigate "
                     "what the hosts' silicon needs")
    for bug in base.waived:
        notes.append(f"WAIVED: {bug} is present on hosts of this domain and guests may not mitigate it")
    base.notes = tuple(notes)
    return with_blockers(base, cat, kinds, req)
