"""Which answer a VM gets: the domain of the host it starts on.

A VM started on host h may reach exactly h's migration domain (its reachability set when
the graph is directed), so its CPU is that domain's answer; with one domain, every VM's.
"""

from __future__ import annotations

from cpusolve.errors import CpusolveError, InputError
from cpusolve.report.records import DomainResult, Result


class NoAnswer(CpusolveError):
    """The domain has no answer to apply (exit 1, like an infeasible domain)."""

    exit_code = 1


def answer_for_host(result: Result, host: str | None) -> DomainResult:
    if host is None:
        if len(result.domains) != 1:
            raise InputError(f"the pool has {len(result.domains)} migration domains; say which host the VM "
                             f"starts on (--host)")
        d = result.domains[0]
    else:
        hits = [d for d in result.domains if host in d.starts]
        if not hits:
            names = sorted({h.name for d in result.domains for h in d.hosts})
            from cpusolve.encodings.catalog import suggest

            raise InputError(f"--host: no host '{host}' in the pool" + suggest(host, names))
        d = hits[0]
    if d.guest is None:
        raise NoAnswer(f"domain {d.index} ({', '.join(h.name for h in d.hosts)}) is {d.status}: no guest CPU "
                       f"to apply (cpusolve POOL says why)")
    return d
