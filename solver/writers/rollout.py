"""``cpusolve rollout`` as text or JSON."""

from __future__ import annotations

import json

from cpusolve.report.rollout import RolloutResult

VERB = {"update": "update", "add": "add", "remove": "retire"}


def render_rollout(result: RolloutResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=1) + "\n"
    return _text(result)


def _list(names, limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", and {len(names) - limit:,} more" if len(names) > limit else "")


def _text(result: RolloutResult) -> str:
    changed = sum(1 for g in result.guests if g.status == "cpu-change")
    lines = [f"Rollout of {result.source}: {', '.join(result.changes)}",
             f"  {len(result.guests):,} running guests: "
             + ", ".join(f"{n:,} {what}" for n, what in (
                 (sum(1 for g in result.guests if g.status == "unaffected"), "unaffected"),
                 (changed, "change CPU at a reboot"),
                 (sum(1 for g in result.guests if g.status == "moved"), "move"),
                 (sum(1 for g in result.guests if g.status == "blocked"), "blocked"),
                 (sum(1 for g in result.guests if g.status == "not-planned"), "without a plan"),
                 (sum(1 for g in result.guests if g.status == "not-checked"), "not checked")) if n)]
    if result.status == "ok":
        lines.append(f"  plan: {len(result.steps)} steps ({result.method}); every guest runnable and protected "
                     f"on every host it may reach at every step (checker: {result.states_checked:,} host changes "
                     "replayed)")
    elif result.status == "impossible":
        lines.append("  no order of these changes keeps every guest runnable and protected (every order tried):")
    else:
        lines.append("  no order found within the search budget (not a proof that none exists):")
    for b in result.blockers:
        lines.append(f"    {b}")
    if result.steps:
        lines.append("")
        lines.append("Steps:")
    for n, step in enumerate(result.steps, start=1):
        if step.action == "change-cpus":
            lines.append(f"  {n}. change these guests' CPUs at their next reboot (before step {n + 1}):")
            for (g, cpu), n in zip(step.guests, step.threads or (1,) * len(step.guests), strict=True):
                lines.append(f"       {g}: -cpu {cpu}" + (f" with threads={n} per core (-smp ...,threads={n})"
                                                          if n > 1 else ""))
        elif step.action == "move":
            lines.append(f"  {n}. move these guests off the hosts to be retired:")
            for g, target in step.guests:
                lines.append(f"       {g} -> {target}")
        else:
            lines.append(f"  {n}. {VERB[step.action]} {_list(step.hosts)} ({'; '.join(step.changes)})")
    affected = [g for g in result.guests if g.status != "unaffected" or g.breaks or g.unsafe_today]
    if affected:
        lines.append("")
        lines.append("Guests:")
    for g in affected:
        lines.append(f"  {g.name} ({g.status}): -cpu {g.cpu}" if g.status != "not-checked"
                     else f"  {g.name} (not checked): {g.cpu}")
        for b in g.breaks:
            lines.append(f"      as it is: {b}")
        for i, (cpu, n) in enumerate(zip(g.new_cpus, g.new_threads or (1,) * len(g.new_cpus), strict=True)):
            lines.append(f"      becomes: -cpu {cpu}" + (f" with threads={n} per core" if n > 1 else ""))
            if i < len(g.new_libvirt) and g.new_libvirt[i]:
                lines.append(f"      as libvirt XML: {g.new_libvirt[i]}")
        if g.moved_to:
            lines.append(f"      moves to: {g.moved_to}")
        if g.why:
            lines.append(f"      {g.why}")
    for note in result.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"
