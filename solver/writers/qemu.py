"""QEMU ``-cpu`` arguments, one line per domain, with a comment naming its hosts."""

from __future__ import annotations

from cpusolve.core.guest import qemu_cpu_arg
from cpusolve.report.records import Result


def render_qemu(result: Result) -> str:
    lines = []
    for d in result.domains:
        hosts = ", ".join(h.name for h in d.hosts)
        lines.append(f"# domain {d.index}: {hosts}")
        if d.guest is None:
            lines.append(f"# {d.status}: no safe guest CPU; see --format text")
        else:
            lines.append(qemu_cpu_arg(d.guest))
            if d.guest.threads > 1:
                n = d.guest.threads
                lines.append(f"# REQUIRED with it: a topology of {n} threads per core; keep threads={n} "
                             f"when choosing the vCPU count (-smp 8,threads={n})")
                lines.append(f"-smp threads={d.guest.threads}")
    return "\n".join(lines) + "\n"
