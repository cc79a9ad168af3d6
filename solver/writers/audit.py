"""``cpusolve audit`` reports: text for a terminal, JSON (``cpusolve-audit/2``)."""

from __future__ import annotations

import json

from cpusolve.report.audit import GuestAudit


def render_audit(results: list[GuestAudit], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"schema": "cpusolve-audit/2", "guests": [r.to_dict() for r in results]},
                          indent=2, sort_keys=True) + "\n"
    lines = []
    for r in results:
        what = f"<cpu mode='{r.mode}'> in {r.cpu}" if r.mode else f"-cpu {r.cpu}"
        lines.append(f"{r.name}: {r.status.upper()}  ({what}; may reach {', '.join(r.hosts)})")
        if r.error:
            lines.append(f"  cannot read its CPU: {r.error}")
        for u in r.unrunnable:
            lines.append(f"  cannot run on {u['hosts']}: lacks {', '.join(u['missing'])}")
        for u in r.unprotected:
            lines.append(f"  UNPROTECTED against {u['bug']} on {u['hosts']} (Linux {'/'.join(u['kernels'])}): "
                         f"{u['why']}")
        if r.fix:
            how = "smallest change" if r.fix_kind == "flags" else "its domain's answer"
            lines.append(f"  fix ({how}): -cpu {r.fix}" + (
                f" with a vCPU topology of threads={r.fix_threads} per core (-smp ...,threads={r.fix_threads})"
                if r.fix_threads > 1 else ""))
            if r.fix_libvirt:
                lines.append(f"  fix as libvirt XML: {r.fix_libvirt}")
        elif r.fix_kind == "timeout":
            lines.append("  no fix found within --timeout (raise it: the domain may still have an answer)")
        elif r.status == "unreadable":
            lines.append("  fix the guest's entry or its file, and audit again")
        elif r.mode:
            pass
        elif r.status != "safe":
            lines.append("  no safe CPU exists for this domain: see cpusolve POOL for the conflict")
    bad = sum(r.status != "safe" for r in results)
    lines.append(f"{len(results) - bad} of {len(results)} guests safe")
    return "\n".join(lines) + "\n"
