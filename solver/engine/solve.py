"""The engine: solve every distinct migration domain of a pool, checked, with one cache.

Each domain goes through the pipeline in order: its problem is solved (backend), the answer
re-checked by the independent checker (verify), and its report assembled (report).  Domains
that pose the same problem share one solve.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from cpusolve.core.pool import POLICIES, Pool, Requirements
from cpusolve.domains.graph import Domain, domains
from cpusolve.encodings import targets
from cpusolve.encodings.catalog import catalog
from cpusolve.encodings.libvirt import libvirt_versions
from cpusolve.encodings.readsets import ReadSets
from cpusolve.encodings.rules import CpuView, load_rules
from cpusolve.engine import parallel
from cpusolve.engine.cache import SolveCache, problem_key
from cpusolve.engine.collector import collection_paused
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S, Outcome, optimize
from cpusolve.errors import InputError, InternalError, check_timeout
from cpusolve.report.blockers import with_blockers
from cpusolve.report.explain import conflicts_text, shortfalls
from cpusolve.report.protection import protection_report
from cpusolve.report.records import (
    Conflict,
    DomainResult,
    Result,
    is_immunity_claim,
    is_mitigation_flag,
)
from cpusolve.verify.checker import check_answer


def solve(pool: Pool, requirements: Requirements | None = None, policy: str | None = None,
          timeout: float = DEFAULT_TIMEOUT_S, cache: SolveCache | None = None, jobs: int = 1,
          executor=None, detail: bool = True, prerender=None) -> Result:
    """Solve every distinct migration domain of ``pool``; every answer is re-checked.

    ``cache`` (a :class:`SolveCache` the caller keeps) carries outcomes, checks and whole
    domain reports from one solve to the next, so repeated solves of a changing pool redo
    only the changed domains.  ``jobs`` > 1 solves distinct problems in that many worker
    processes first; the answers, their checks and the report are then made here, in
    domain order, exactly as with one.  Without a kept ``cache``, workers build whole
    domain reports (engine.parallel); ``executor`` (a ``concurrent.futures.Executor`` or a
    ``distributed.Client``) solves them elsewhere, in ``jobs`` chunks or more.
    ``detail=False`` gives each domain its checked answer (or conflict) without the report
    around it (protection lines, shortfalls, better models): what a planner that only
    needs the answers of many new domains asks (``split``), in the serial path.
    ``prerender`` (writers.json_out.JsonChunks) has the report's text written by the
    processes that make the domain reports, where they are made in workers.  The cyclic
    garbage collector is paused meanwhile (engine.collector).
    """
    with collection_paused():
        return _solve(pool, requirements, policy, timeout, cache, jobs, executor, detail, prerender)


def _solve(pool: Pool, requirements: Requirements | None, policy: str | None, timeout: float,
           cache: SolveCache | None, jobs: int, executor, detail: bool, prerender) -> Result:
    check_timeout(timeout)
    req = requirements or pool.requirements
    if policy is not None:
        if policy not in POLICIES:
            raise InputError(f"policy must be one of {', '.join(POLICIES)}, not '{policy}'")
        req = dataclasses.replace(req, policy=policy)
    cat = catalog()
    reuse = cache is not None
    cache = SolveCache() if cache is None else cache
    doms = domains(pool)
    results = []
    if not reuse and detail and (executor is not None or jobs > 1):
        # whole reports elsewhere: a report is a function of its domain alone
        if executor is not None:
            done = parallel.solve_on_executor(pool, doms, req, timeout, executor,
                                              max(jobs, 1) * parallel.CHUNKS_PER_WORKER)
        else:
            # Whole reports at once, each process solving the problems its domains pose.
            # A first pass over the distinct problems (which workers would inherit) no
            # longer pays: most problems are answered without Z3 now, and on the benchmark
            # pool (2,000 domains, 131 problems) the pass cost 0.5 s before the workers
            # started, more than the problems both processes meet cost them twice.
            done = parallel.solve_in_workers(pool, doms, req, timeout, jobs, cache, prerender)
        if done is not None:
            return _result(pool, req, done)
    if jobs > 1 and reuse:
        _solve_in_parallel(doms, req, timeout, cache, jobs)
    for index, dom in enumerate(doms, start=1):
        if not reuse:
            results.append(_solve_domain(pool, dom, index, req, timeout, cache, cat, detail))
            continue
        # A kept cache also keeps whole domain reports: after a change to a big pool only
        # the domains whose hosts changed are rebuilt (a report is a function of these).
        key = (dom.starts, tuple(pool.hosts[h] for h in dom.hosts), req, timeout, detail)
        hit = cache.report(key, lambda dom=dom, index=index: _solve_domain(pool, dom, index, req, timeout,
                                                                           cache, cat, detail))
        results.append(hit if hit.index == index else dataclasses.replace(hit, index=index))
    cache.end()
    return _result(pool, req, results)


def solve_written(pool: Pool, timeout: float, jobs: int, prerender) -> tuple[Result, bool] | None:
    """Every domain of ``pool`` solved and written by ``jobs`` processes into ``prerender``
    (writers.json_out.JsonChunks, whose ``render_written`` gives the report), with whether
    every domain was solved, around a Result without domain records (``domains`` empty).

    The CLI's JSON report with ``-j`` reads nothing of the records but their text, which
    the processes that made them have written: sending each worker's records back to be
    unpickled here (5 MB for the 2,000 domains of the diverse benchmark pool) cost the
    worker 0.2 s and this process 0.13 s.  None where no workers can run (the caller then
    solves in this process)."""
    with collection_paused():
        check_timeout(timeout)
        req = pool.requirements
        solved = parallel.solve_in_workers(pool, domains(pool), req, timeout, jobs, SolveCache(), prerender,
                                           records=False)
    if solved is None:
        return None
    return _result(pool, req, ()), all(solved)


def _result(pool: Pool, req: Requirements, domain_results) -> Result:
    return Result(source=pool.source, requirements=req.to_dict(), domains=tuple(domain_results),
                  directed=pool.directed, graph=pool.graph, groups=tuple(pool.groups))


def domain_requirements(req: Requirements, types) -> Requirements:
    """``req`` for one domain: its answer may use only names every host's QEMU and libvirt
    know, so the oldest of the hosts' versions (and the requirement's, a cap) apply."""
    qemus = [v for v in (req.qemu, *(t.qemu for t in types)) if v]
    libvirts = [v for v in (req.libvirt, *(t.libvirt for t in types)) if v]
    order = targets.qemu_versions()
    qemu = min(qemus, key=order.index) if qemus else None
    if qemu == targets.default_qemu():
        qemu = None
    lv_order = libvirt_versions()
    lv = min(libvirts, key=lv_order.index) if libvirts else None
    if (qemu, lv) == (req.qemu, req.libvirt):
        return req
    return dataclasses.replace(req, qemu=qemu, libvirt=lv)


def _optimize_task(args) -> Outcome:
    vendor, types, req, timeout = args
    return optimize(catalog(), vendor, types, req, timeout)


def _solve_in_parallel(doms, req: Requirements, timeout: float, cache: SolveCache, jobs: int) -> None:
    """Fill ``cache`` with one outcome per distinct problem, solved by this process and
    worker processes (those left unsolved, when no workers run, are solved later here)."""
    todo: dict[tuple, tuple] = {}
    top = req
    for dom in doms:
        req = domain_requirements(top, dom.types)
        vendors = {t.vendor for t in dom.types}
        if len(vendors) != 1 or (req.vendor and req.vendor not in vendors):
            continue
        vendor = next(iter(vendors))
        if not cache.has_outcome(vendor, dom.types, req, timeout):
            todo.setdefault(problem_key(vendor, dom.types, req, timeout), (vendor, dom.types, req, timeout))
    tasks = list(todo.values())
    outcomes = parallel.shared_map(_optimize_task, tasks, jobs)
    if outcomes is None:
        return
    for args, outcome in zip(tasks, outcomes, strict=True):
        cache.put_outcome(*args, outcome)


def guest_sees(view: CpuView, kernel: str) -> tuple[str, ...]:
    """The bugs a Linux guest on ``view`` marks itself affected by.  Answers that agree on
    the identity and on every bit an earlier answer's evaluation read share it
    (encodings.readsets): a fleet's answers differ mostly in bits no bug rule reaches."""
    key = (kernel, *(getattr(view, f) for f in _VIEW_FIELDS))  # every field but the features
    return _GUEST_SEES.get(key, view.features, lambda features: tuple(
        b for b, hit in load_rules(kernel).affected(dataclasses.replace(view, features=features)).items() if hit))


_GUEST_SEES: ReadSets[tuple[str, ...]] = ReadSets()
_VIEW_FIELDS = tuple(f.name for f in dataclasses.fields(CpuView) if f.name != "features")


def _solve_domain(pool: Pool, dom: Domain, index: int, req: Requirements, timeout: float,
                  cache: SolveCache, cat, detail: bool = True) -> DomainResult:
    req = domain_requirements(req, dom.types)
    kinds = dom.kinds(pool)
    hosts = kinds.of(tuple(range(len(dom.types))))  # every host, by name
    head = dict(index=index, hosts=hosts, starts=dom.starts, qemu_target=req.qemu, libvirt=req.libvirt)
    vendors = sorted({t.vendor for t in dom.types})
    if len(vendors) > 1:
        by_vendor = {v: [h for h in dom.hosts if pool.hosts[h].facts.vendor == v] for v in vendors}
        text = "mixed vendors: " + "; ".join(
            f"{v}: {', '.join(hs)}" for v, hs in by_vendor.items())
        return DomainResult(**head, vendor=None, status="infeasible", conflicts=(
            Conflict("vendor", text, "live migration across CPU vendors is refused: split the domain by vendor",
                     hosts),))
    vendor = vendors[0]
    host_bugs = tuple(sorted(set().union(*(t.bugs for t in dom.types))))
    waived = tuple(sorted(req.waive & set(host_bugs)))
    head.update(vendor=vendor, host_bugs=host_bugs, waived=waived,
                shortfalls=shortfalls(kinds, cat) if detail else ())
    if req.vendor and req.vendor != vendor:
        return DomainResult(**head, status="infeasible", conflicts=(
            Conflict("vendor", f"requirement vendor {req.vendor}, but the hosts are {vendor}",
                     "drop requirements.vendor or solve another pool", hosts),))
    outcome = cache.outcome(vendor, dom.types, req, timeout,
                            lambda: optimize(cat, vendor, dom.types, req, timeout))
    head["solve_ms"] = outcome.millis
    if outcome.status == "timeout":
        return DomainResult(**head, status="timeout", notes=(f"Z3 did not finish within {timeout:g} s (--timeout)",))
    if outcome.status == "unsat":
        return DomainResult(**head, status="infeasible", conflicts=conflicts_text(kinds, outcome.core))
    guest = outcome.guest

    def check() -> None:
        labels = [", ".join(kinds.names(i)) for i in range(len(dom.types))]
        problems = check_answer(cat, dom.types, req, guest, labels)
        if problems:
            raise InternalError(f"checker rejected the answer for domain {index} ({guest.model}): "
                                + "; ".join(problems))

    cache.check((dom.types, req, guest), check)  # the verdict is a function of these alone
    view = guest.view()
    fam, mod, step = view.family, view.model, view.stepping
    features = guest.visible()
    notes = []
    if guest.threads > 1:
        notes.append(f"guests need a vCPU topology with threads={guest.threads} per core, so that their kernel "
                     "knows its vCPUs may run on SMT siblings (it would otherwise skip a mitigation the hosts need)")
    if guest.fms is not None:
        own = cat.model(guest.model)
        notes.append(f"shows family/model/stepping {fam}/{mod}/{step} instead of "
                     f"{own.family}/{own.model}/{own.stepping} so that guests still mitigate "
                     "what the hosts' silicon needs")
    for bug in waived:
        notes.append(f"WAIVED: {bug} is present on hosts of this domain and guests may not mitigate it")
    result = DomainResult(
        **head, guest=guest, features=features, status="ok-waived" if waived else "ok",
        mitigations=tuple(f"+{f}" for f in guest.plus if is_mitigation_flag(f)),
        claims=tuple(sorted(f for f in features if is_immunity_claim(f))),
        guest_bugs=MappingProxyType({k: guest_sees(view, k) for k in req.kernels}), notes=tuple(notes))
    if not detail:
        return result
    result = dataclasses.replace(result, protection=protection_report(kinds, req, guest))
    return with_blockers(result, cat, kinds, req)
