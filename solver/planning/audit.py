"""Audit running guests: which ones cannot run on a host they may reach, which believe they
are immune to a bug a reachable host has, and the smallest change that makes each safe.
"""

from __future__ import annotations

from cpusolve.core.guest import qemu_cpu_arg
from cpusolve.core.pool import Pool
from cpusolve.domains.graph import domains
from cpusolve.domains.kinds import type_order
from cpusolve.encodings.catalog import catalog
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S, nearest
from cpusolve.engine.solve import solve
from cpusolve.inputs.guests_file import GuestSpec
from cpusolve.report.audit import GuestAudit
from cpusolve.verify.checker import problems


def audit(pool: Pool, guests: list[GuestSpec], timeout: float = DEFAULT_TIMEOUT_S) -> list[GuestAudit]:
    cat, req = catalog(), pool.requirements
    reach = {s: d.hosts for d in domains(pool) for s in d.starts}
    answers: dict = {}
    out = []
    for spec in guests:
        g, hosts = spec, reach[spec.host] if spec.host is not None else spec.domain
        types = tuple(sorted({pool.hosts[h].facts for h in hosts},
                             key=type_order))
        names = [", ".join(h for h in hosts if pool.hosts[h].facts == t) for t in types]
        found = problems(cat, types, req, g.cpu, names)
        result = GuestAudit(g.name, g.source, "safe", hosts)
        for i, _ in enumerate(types):
            missing = [p.feature or p.text for p in found if p.kind in ("missing", "vendor") and p.hosts == (i,)]
            if missing:
                result.unrunnable.append({"hosts": names[i], "missing": missing})
        unprotected: dict[tuple, dict] = {}
        for p in found:
            if p.unsafe:
                hosts_text = ", ".join(names[i] for i in p.hosts)
                entry = unprotected.setdefault((p.bug, hosts_text, p.why), {
                    "bug": p.bug, "kernels": [], "hosts": hosts_text, "why": p.why})
                entry["kernels"].append(p.kernel)
        result.unprotected = list(unprotected.values())
        if result.unrunnable:
            result.status = "unrunnable"
        elif result.unprotected:
            result.status = "unsafe"
        if result.status != "safe":
            vendors = {t.vendor for t in types}
            repair = ("nearest", types, g.cpu)  # guests of one image on one kind of domain
            if repair not in answers:
                answers[repair] = (nearest(cat, types[0].vendor, types, req, g.cpu, timeout)
                                   if len(vendors) == 1 else None)
            fixed = answers[repair]
            if fixed is not None:
                result.fix, result.fix_kind = qemu_cpu_arg(fixed), "flags"
            else:
                key = hosts
                if key not in answers:
                    sub = Pool(hosts={h: pool.hosts[h] for h in hosts}, graph=pool.graph.subgraph(hosts).copy(),
                               directed=False, requirements=req, source=pool.source)
                    sub.graph.add_edges_from(zip(hosts, hosts[1:], strict=False))
                    sub.graph.add_edges_from(zip(hosts[1:], hosts, strict=False))
                    answers[key] = solve(sub, timeout=timeout).domains[0]
                d = answers[key]
                if d.guest is not None:
                    result.fix, result.fix_kind = qemu_cpu_arg(d.guest), "domain-answer"
        out.append(result)
    return out
