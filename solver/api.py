"""The library API: load a pool, solve every migration domain, get checked answers.

    from cpusolve import load_pool, solve
    result = solve(load_pool("pool.json"))
    for d in result.domains:
        print(d.status, d.guest and qemu_cpu_arg(d.guest))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import networkx as nx

from cpusolve.core.guest import GuestCpu, qemu_cpu_arg
from cpusolve.core.hosts import Host, HostFacts
from cpusolve.core.pool import Pool, Requirements
from cpusolve.encodings.catalog import catalog
from cpusolve.engine.cache import SolveCache
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S
from cpusolve.engine.solve import solve as _engine_solve
from cpusolve.errors import InputError, check_timeout
from cpusolve.hostfacts.derive import load_pool as _load_pool
from cpusolve.report.records import Result
from cpusolve.report.verdicts import BugVerdict, GuestVerdicts
from cpusolve.verify.checker import problems
from cpusolve.writers.json_out import JsonChunks


@dataclass(frozen=True)
class Verdict:
    """Whether a guest CPU may run on a host: runnable, and a Linux guest protected there."""

    ok: bool
    missing: tuple[str, ...] = ()  # features the host cannot expose (or vendor mismatch)
    unsafe: tuple[str, ...] = ()  # bugs of the host the guest's kernel is not protected against
    other: tuple[str, ...] = ()  # requirement, dependency and flag problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "missing": list(self.missing), "unsafe": list(self.unsafe),
                "other": list(self.other)}


@lru_cache(maxsize=64)  # memos of a long-lived scheduler process stay bounded
def _fast(req: Requirements):
    from cpusolve.verify.fastcheck import FastChecker

    return FastChecker(catalog(), req, host_fms_rule=False)


def as_guest(guest: GuestCpu | str) -> GuestCpu:
    """A GuestCpu from itself or a QEMU ``-cpu`` string."""
    if isinstance(guest, GuestCpu):
        return guest
    if not isinstance(guest, str):
        raise InputError(f"a guest CPU is a GuestCpu or a -cpu string, not {type(guest).__name__}")
    return _parse_guest(guest)


@lru_cache(maxsize=1 << 16)
def _parse_guest(guest: str) -> GuestCpu:
    from cpusolve.inputs.guest_cpu import parse_qemu_cpu

    return parse_qemu_cpu(guest)


def _facts(host: Host | HostFacts | dict) -> HostFacts:
    if isinstance(host, HostFacts):
        return host
    if isinstance(host, Host):
        return host.facts
    if not isinstance(host, dict):
        raise InputError(f"a host is a Host, HostFacts or a pool.json host entry (dict), not {type(host).__name__}")
    from cpusolve.hostfacts.derive import host_from_entry

    return host_from_entry("host", host, "<host>", Path(".")).facts


def check(guest: GuestCpu | str, host: Host | HostFacts | dict,
          requirements: Requirements | None = None, reasons: bool = True) -> Verdict:
    """May ``guest`` run on ``host``, and is a Linux guest protected there against every bug
    of the host (what its kernel does with this CPU works on that silicon)?

    ``reasons=False`` skips working out why a pair fails: a scheduler's filter only needs
    ``ok`` (about a million checks a second once guest and host have been seen).
    """
    _check_type(requirements, (Requirements, type(None)), "requirements", "a Requirements")
    req = requirements or Requirements()
    guest, facts = as_guest(guest), _facts(host)
    if _fast(req).check(guest, facts):
        return Verdict(ok=True)
    if not reasons:
        return Verdict(ok=False, other=("not checked in detail (reasons=False)",))
    found = problems(catalog(), (facts,), req, guest, ["host"])
    missing = tuple(p.text for p in found if p.kind in ("missing", "vendor"))
    unsafe = tuple(p.text for p in found if p.unsafe)
    other = tuple(p.text for p in found if p.kind not in ("missing", "vendor", "fms") and not p.unsafe)
    return Verdict(ok=not (missing or unsafe or other), missing=missing, unsafe=unsafe, other=other)


def targets(guest: GuestCpu | str, pool: Pool | str | Path | dict,
            requirements: Requirements | None = None) -> list[str]:
    """The hosts of ``pool`` a VM with this guest CPU may run on or be migrated to."""
    if not isinstance(pool, Pool):
        pool = load_pool(pool)
    guest = as_guest(guest)
    _check_type(requirements, (Requirements, type(None)), "requirements", "a Requirements")
    req = requirements or pool.requirements
    verdicts: dict[HostFacts, bool] = {}
    out = []
    for name, host in sorted(pool.hosts.items()):
        if host.facts not in verdicts:
            verdicts[host.facts] = check(guest, host.facts, req, reasons=False).ok
        if verdicts[host.facts]:
            out.append(name)
    return out


def load_pool(source: str | Path | dict | nx.Graph) -> Pool:
    """A pool from a pool.json path ('-' for stdin), a dict of the same shape, or a graph."""
    if not isinstance(source, (str, Path, dict, list, nx.Graph)):
        raise InputError(f"a pool is a path, a dict or a networkx graph, not {type(source).__name__}")
    return _load_pool(source)


def solve(pool: Pool | str | Path | dict | nx.Graph, requirements: Requirements | None = None,
          policy: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
          cache: SolveCache | None = None, jobs: int = 1, executor=None, prerender=None) -> Result:
    """Solve every distinct migration domain of ``pool``; every answer is re-checked.

    ``cache`` (a :class:`~cpusolve.engine.cache.SolveCache` the caller keeps) carries
    outcomes and domain reports to the next solve, so repeated solves of a changing pool
    redo only the changed domains.
    ``jobs`` > 1 solves the domains in that many worker processes (with a kept ``cache``:
    the distinct problems, then the reports here); the report is byte-identical to one
    process's.  ``executor`` (a ``concurrent.futures.Executor``, or a ``distributed.Client``
    for a dask cluster) solves the domains there instead, in ``jobs`` x 8 chunks; every
    answer is checked where it is made, and the report is again the same.
    ``prerender`` (a :class:`~cpusolve.writers.json_out.JsonChunks`) has the workers of
    ``jobs`` > 1 write the JSON report's domains too; pass it to ``render_json``.
    """
    check_timeout(timeout)
    if not isinstance(pool, Pool):
        pool = load_pool(pool)
    _check_type(requirements, (Requirements, type(None)), "requirements", "a Requirements")
    _check_type(policy, (str, type(None)), "policy", "'strict' or 'compat'")
    _check_type(cache, (SolveCache, type(None)), "cache", "a SolveCache")
    _check_jobs(jobs)
    _check_type(prerender, (JsonChunks, type(None)), "prerender", "a JsonChunks")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise InputError(f"executor must be a concurrent.futures.Executor or a distributed.Client, "
                         f"not {type(executor).__name__}")
    return _engine_solve(pool, requirements, policy, timeout, cache, jobs, executor, prerender=prerender)


def split(pool: Pool | str | Path | dict | nx.Graph, requirements: Requirements | None = None,
          policy: str | None = None, timeout: float = DEFAULT_TIMEOUT_S, held_back: float | None = None,
          jobs: int = 1):
    """Which migration edges to cut so that every domain has a protected answer (what
    ``cpusolve split`` prints): a :class:`~cpusolve.report.split.SplitResult` with the parts,
    the cut edges and the split pool solved (``.after``, every answer checked)."""
    from cpusolve.planning.split import split as _split

    check_timeout(timeout)
    pool = _with(pool, requirements, policy)
    _check_jobs(jobs)
    _check_type(held_back, (int, float, type(None)), "held_back", "a percentage")
    return _split(pool, timeout=timeout, held_back=held_back, jobs=jobs)


def rollout(pool: Pool | str | Path | dict | nx.Graph, guests, changes, requirements: Requirements | None = None,
            policy: str | None = None, timeout: float = DEFAULT_TIMEOUT_S):
    """The order of host changes and guest CPU changes that keeps every running guest
    runnable and protected (what ``cpusolve rollout`` prints): ``guests`` is a guests file
    path (the audit's format) and ``changes`` a list of ``--change`` strings."""
    from cpusolve.inputs.guests_file import read_guests
    from cpusolve.planning.rollout import rollout as _rollout

    check_timeout(timeout)
    pool = _with(pool, requirements, policy)
    if isinstance(changes, str) or not isinstance(changes, (list, tuple)):
        raise InputError("changes must be a list of change strings (HOST:+bit,-bit, +NAME=MODEL, -HOST)")
    specs = read_guests(str(guests), pool) if isinstance(guests, (str, Path)) else guests
    return _rollout(pool, specs, list(changes), timeout)


def _with(pool, requirements: Requirements | None, policy: str | None) -> Pool:
    """``pool`` loaded, with these requirements and policy in place (a copy, not the caller's)."""
    if not isinstance(pool, Pool):
        pool = load_pool(pool)
    _check_type(requirements, (Requirements, type(None)), "requirements", "a Requirements")
    _check_type(policy, (str, type(None)), "policy", "'strict' or 'compat'")
    req = requirements or pool.requirements
    if policy is not None:
        req = with_requirements(req, policy=policy)
    return dataclasses.replace(pool, requirements=req) if req is not pool.requirements else pool


#: worker processes a solve may ask for (more than the cores is never used; see engine.solve)
MAX_JOBS = 256


def _check_jobs(jobs) -> None:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= MAX_JOBS:
        raise InputError(f"jobs must be a whole number from 1 to {MAX_JOBS}, not {jobs!r}"[:120])


def _check_type(value, types, name: str, what: str) -> None:
    if not isinstance(value, types):
        raise InputError(f"{name} must be {what}, not {type(value).__name__}")


def verdict(cpu: GuestCpu | str, kernel: str = "6.1") -> GuestVerdicts:
    """What a Linux guest of ``kernel`` concludes about each CPU bug on ``cpu`` (a GuestCpu,
    a ``-cpu`` string or a libvirt XML file), why, and what it then does (its sysfs texts
    and boot lines): what ``cpusolve verdict`` prints."""
    from cpusolve.encodings.rules import load_rules
    from cpusolve.inputs.guest_cpu import parse_cpu

    if isinstance(cpu, GuestCpu):
        guest, source = cpu, qemu_cpu_arg(cpu)
    else:
        guest, source = parse_cpu(cpu)
    table = load_rules(kernel)
    view = guest.view()  # on KVM: the MSR probes KVM does not emulate fault
    affected = table.sysfs_affected(view)
    return GuestVerdicts(source, guest, table.kernel,
                         tuple(BugVerdict(b, affected[b], table.explain(view, b), table.sysfs_text(view, b))
                               for b in table.bugs), tuple(table.dmesg_lines(view)))


def with_requirements(req: Requirements, policy: str | None = None, kernels=(), qemu: str | None = None,
                      waive=(), libvirt: str | None = None) -> Requirements:
    """``req`` with the command line's overrides (each validated as the pool file's key would
    be): a policy, guest kernels, a QEMU target, a libvirt target, more waived bugs."""
    from cpusolve.inputs.pool_file import read_requirements

    changes: dict = {}
    if kernels:
        changes["kernels"] = read_requirements({"kernels": list(kernels)}, "--kernel").kernels
    if qemu:
        changes["qemu"] = read_requirements({"qemu": qemu}, "--qemu").qemu
    if libvirt:
        changes["libvirt"] = read_requirements({"libvirt": libvirt}, "--libvirt").libvirt
    if waive:
        changes["waive"] = req.waive | read_requirements({"waive": list(waive)}, "--waive").waive
    if policy:
        changes["policy"] = read_requirements({"policy": policy}, "--policy").policy
    return dataclasses.replace(req, **changes) if changes else req
