"""The default terminal report: per domain its hosts, answer, mitigations and blockers."""

from __future__ import annotations

from cpusolve.core.guest import qemu_cpu_arg
from cpusolve.encodings.spelling import residual_label
from cpusolve.report.plans import Change, Suggestion
from cpusolve.report.records import DomainResult, Result

MAX_SHORTFALLS = 25


def _hosts(refs, memo: dict | None = None) -> str:
    """Host names with counts.  A domain's report names the same lists again and again (one
    tuple per set of host kinds, see domains.HostKinds): ``memo`` formats each once."""
    if memo is None:
        return ", ".join(f"{r.name} (x{r.count})" if r.count > 1 else r.name for r in refs)
    hit = memo.get(id(refs))
    if hit is None:
        hit = memo[id(refs)] = (refs, _hosts(refs))  # holding refs keeps its id unique
    return hit[1]


def _domain(d: DomainResult, directed: bool) -> list[str]:
    memo: dict = {}
    machines = sum(h.count for h in d.hosts)
    head = f"Domain {d.index}: {len(d.hosts)} host{'s' if len(d.hosts) != 1 else ''}, " \
           f"{machines} machine{'s' if machines != 1 else ''}"
    if d.vendor:
        head += f", {d.vendor}"
    lines = [f"{head}: {d.status.upper()}"]
    lines.append(f"  hosts:        {_hosts(d.hosts)}")
    if directed and d.starts != tuple(h.name for h in d.hosts):
        lines.append(f"  for VMs on:   {', '.join(d.starts)}")
    if d.guest:
        g = d.guest
        lines.append(f"  model:        {g.model}")
        lines.append(f"  flags:        {','.join(g.flags()) or '(none)'}")
        if g.fms:
            lines.append(f"  f/m/s shown:  family={g.fms[0]} model={g.fms[1]} stepping={g.fms[2]}")
        if g.threads > 1:
            lines.append(f"  topology:     threads={g.threads} per core (qemu -smp ...,threads={g.threads}; "
                         f"libvirt <topology threads='{g.threads}'/>)")
        lines.append(f"  mitigations:  {', '.join(d.mitigations) or '(none beyond the model)'}")
        if d.claims:
            lines.append(f"  immunity bits: {', '.join(d.claims)}")
        lines.append(f"  qemu:         -cpu {qemu_cpu_arg(g)}")
        for kernel, bugs in d.guest_bugs.items():
            lines.append(f"  Linux {kernel} guest sees itself affected by: {', '.join(bugs) or '(nothing)'}")
    if d.host_bugs:
        lines.append(f"  host bugs:    {', '.join(d.host_bugs)}")
    for note in d.notes:
        lines.append(f"  note: {note}")
    for c in d.conflicts:
        lines.append(f"  conflict: {c.text}")
        lines.append(f"      fix: {c.fix}")
    for p in d.protection:
        where = _hosts(p.hosts, memo)
        kernels = "" if len(p.kernels) > 1 else f" (Linux {p.kernels[0]})"
        label = {"protected": "protected", "partial": "protected", "ineffective": "INEFFECTIVE",
                 "unprotected": "UNPROTECTED"}[p.status]
        works = f" (works there: {p.condition})" if p.condition and p.status != "ineffective" else ""
        residual = f"; remains: {residual_label(p.residual)}" if p.residual else ""
        lines.append(f"  {label + ':':<13} {p.bug} on {where}{kernels}: {p.does_text()}{works}{residual}")
    for c in d.safety_costs:
        lines.append(f"  safety cost:  {c.text}")
    if d.better:
        lines.append("  next better models:")
        for b in d.better:
            parts = []
            for m in b.missing:
                who = _hosts(m.lacking, memo) if m.lacking else m.reason
                parts.append(f"{m.feature} ({who})")
            lines.append(f"    {b.model:<24} needs {'; '.join(parts)}")
    if d.shortfalls:
        lines.append("  held back by (feature: hosts lacking it):")
        for s in d.shortfalls[:MAX_SHORTFALLS]:
            lines.append(f"    {s.feature:<22} {_hosts(s.lacking, memo)}")
        if len(d.shortfalls) > MAX_SHORTFALLS:
            lines.append(f"    ... {len(d.shortfalls) - MAX_SHORTFALLS} more (see --format json)")
    return lines


def render_text(result: Result) -> str:
    directed = any(d.starts != tuple(h.name for h in d.hosts) for d in result.domains)
    out = []
    for d in result.domains:
        out += _domain(d, directed)
        out.append("")
    if result.whatif is not None:
        out.append("What changes:")
        out += [f"  {change_text(c)}" for c in result.changes] or ["  no answer changes"]
        out.append("")
    if result.suggestions is not None:
        out.append("Suggestions (gain = features gained x machines still served):")
        out += [f"  {i}. {suggestion_text(s)}" for i, s in enumerate(result.suggestions, 1)] \
            or ["  no single host kind holds a domain back"]
        out.append("")
    ok = sum(d.solved for d in result.domains)
    out.append(f"{ok} of {len(result.domains)} domain{'s' if len(result.domains) != 1 else ''} solved"
               + ("" if ok == len(result.domains) else "; see conflicts above"))
    return "\n".join(out) + "\n"


def change_text(c: Change) -> str:
    """One line of a what-if: how the answer for some start hosts changes."""
    parts = [f"VMs on {', '.join(c.starts)}: {c.before} -> {c.after}"]
    if c.gained:
        parts.append(f"gains {', '.join(c.gained)}")
    if c.lost:
        parts.append(f"loses {', '.join(c.lost)}")
    return "; ".join(parts)


def suggestion_text(s: Suggestion) -> str:
    plural = "s" if s.machines != 1 else ""
    return (f"retire or upgrade {', '.join(s.hosts)} ({s.machines} machine{plural}) in domain {s.domain}: "
            f"gain {s.gain} = {len(s.gained)} features x "
            f"{s.gain // max(len(s.gained), 1)} machines"
            + (f" ({', '.join(s.gained[:8])}{', ...' if len(s.gained) > 8 else ''})"
               if s.gained else "")
            + (f"; model {s.model_after}" if s.model_after else ""))
