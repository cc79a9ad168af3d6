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
    pad = " " * (width + 18)
    for b in v.bugs:
        said = b.text if b.text is not None else "(not decided by the CPU alone)"
        lines.append(f"  {b.bug:<{width}}  {'affected' if b.affected else 'NOT affected':<12}  {said}")
        lines.append(f"{pad}{b.why}")
    if v.dmesg:
        lines.append("  boot log:")
        lines.extend(f"    {line}" for line in v.dmesg)
    return "\n".join(lines) + "\n"
