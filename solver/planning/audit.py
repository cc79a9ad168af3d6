"""Audit running guests: which ones cannot run on a host they may reach, which would run
unprotected from a bug a reachable host has, and the smallest change that makes each safe.
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
        if g.error is not None:
            out.append(GuestAudit(g.name, g.source, "unreadable", hosts, error=g.error))
            continue
        if g.mode is not None:
            out.append(_host_cpu_guest(g, hosts, types, names))
            continue
        found = problems(cat, types, req, g.cpu, names)
        result = GuestAudit(g.name, g.source, "safe", hosts, kind=g.kind)
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
                result.fix, result.fix_kind, result.fix_threads = qemu_cpu_arg(fixed), "flags", fixed.threads
                result.fix_libvirt = as_libvirt(fixed, g, types)
            else:
                key = hosts
                if key not in answers:
                    sub = Pool(hosts={h: pool.hosts[h] for h in hosts}, graph=pool.graph.subgraph(hosts).copy(),
                               directed=False, requirements=req, source=pool.source)
                    sub.graph.add_edges_from(zip(hosts, hosts[1:], strict=False))
                    sub.graph.add_edges_from(zip(hosts[1:], hosts, strict=False))
                    answers[key] = solve(sub, timeout=timeout).domains[0]
                d = answers[key]
                if d.guest is None and d.status == "timeout":
                    result.fix_kind = "timeout"  # not "no safe CPU": the search ran out of time
                if d.guest is not None:
                    result.fix, result.fix_kind = qemu_cpu_arg(d.guest), "domain-answer"
                    result.fix_threads = d.guest.threads
                    result.fix_libvirt = as_libvirt(d.guest, g, types)
        out.append(result)
    return out


def _host_cpu_guest(g, hosts, types, names) -> GuestAudit:
    """A host-passthrough or host-model guest sees the CPU of the host it started on (libvirt
    expands host-model there, at start): it migrates safely only among hosts whose CPUs and
    microcode are the same, which is what cpusolve cannot vouch for otherwise."""
    result = GuestAudit(g.name, g.source, "safe", hosts, kind=g.kind, mode=g.mode)
    if len(types) > 1:
        result.status = "unrunnable"
        result.unrunnable.append({"hosts": "; ".join(names),
                                  "missing": [f"{g.mode}: the guest keeps its start host's CPU, and these "
                                              f"{len(types)} kinds of host differ (use a custom model: "
                                              f"cpusolve apply)"]})
    return result


def as_libvirt(fix, g, types) -> str | None:
    """A libvirt guest's fix as the <cpu> its domain XML needs (and the passthrough, where
    it needs one), for the oldest libvirt its hosts run (else the newest known)."""
    if g.kind != "libvirt":
        return None
    from cpusolve.encodings.libvirt import libvirt_versions, newest
    from cpusolve.writers.libvirt import NotExpressible, cpu_text, guest_cpu, passthrough_args

    order = libvirt_versions()
    stated = [t.libvirt for t in types if t.libvirt]
    version = min(stated, key=order.index) if stated else newest()
    try:
        c = guest_cpu(fix, version)
    except NotExpressible as e:
        return f"(not expressible: {e})"
    extra = passthrough_args(c)
    return cpu_text(c) + (f" with <qemu:commandline> {' '.join(extra)}" if extra else "")
