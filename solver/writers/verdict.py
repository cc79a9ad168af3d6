"""``cpusolve verdict`` output: a table for a terminal, or JSON."""

from __future__ import annotations

import json

from cpusolve.report.verdicts import GuestVerdicts


def render_verdicts(v: GuestVerdicts, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(v.to_dict(), indent=2, sort_keys=True) + "\n"
    vendor, fam, mod, step = v.guest.identity()
    lines = [f"{v.cpu}: {vendor} family {fam} model {mod} stepping {step}, Linux {v.kernel} guest"]
    width = max(len(b.bug) for b in v.bugs)
    for b in v.bugs:
        lines.append(f"  {b.bug:<{width}}  {'affected' if b.affected else 'NOT affected':<12}  {b.why}")
    return "\n".join(lines) + "\n"
