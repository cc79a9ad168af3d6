"""``cpusolve split`` as text, JSON, or a Graphviz picture with the cut edges drawn."""

from __future__ import annotations

import json

from cpusolve.report.split import ComponentSplit, SplitResult
from cpusolve.writers.dot import PALETTE, _q, host_label


def render_split(result: SplitResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=1, sort_keys=False) + "\n"
    if fmt == "dot":
        return _dot(result)
    return _text(result)


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _hosts(names, counts: dict[str, int], limit: int = 12) -> str:
    shown = [host_label(h, counts) for h in names[:limit]]
    more = f", and {len(names) - limit:,} more" if len(names) > limit else ""
    return ", ".join(shown) + more


def _text(result: SplitResult) -> str:
    before, after = result.before, result.after
    lacking_before = sum(1 for d in before.domains if d.guest is None)
    lacking_after = sum(1 for d in after.domains if d.guest is None)
    lines = [f"Split of {result.source}: {_n(len(result.components), 'component')} changed; "
             f"{_n(len(before.domains), 'domain')} -> {len(after.domains):,}; "
             f"without an answer: {lacking_before:,} -> {lacking_after:,}"]
    if not result.components:
        lines.append("Nothing to split: every domain has an answer." if not lacking_before
                     else "No split helps the domains without an answer (see skipped).")
    counts = {r.name: r.count for d in before.domains for r in d.hosts}
    for i, c in enumerate(result.components, start=1):
        lines.append("")
        lines += _component_text(i, c, counts, before.directed)
    if result.skipped:
        lines.append("")
        lines.append(f"skipped (a domain timed out; raise --timeout): {_hosts(list(result.skipped), counts)}")
    return "\n".join(lines) + "\n"


def _component_text(i: int, c: ComponentSplit, counts: dict[str, int], directed: bool) -> list[str]:
    why = "no answer for some domain" if c.reason == "infeasible" else "held back"
    lines = [f"Component {i}: {_n(len(c.hosts), 'host')}, {_n(c.machines, 'machine')} ({why}; {c.method})"]
    arrow = " -> " if directed else " -- "
    edges = ", ".join(f"{a}{arrow}{b}" for a, b in c.cut_edges[:20])
    if len(c.cut_edges) > 20:
        edges += f", and {len(c.cut_edges) - 20:,} more"
    lines.append(f"  cut:     {_n(c.pairs_cut, 'host pair')} stop migrating"
                 + (f"; edges: {edges}" if edges else ""))
    for g, into in c.cut_groups:
        lines.append(f"  group {g} split into: " + " | ".join(_hosts(list(m), counts, 6) for m in into))
    for j, p in enumerate(c.parts, start=1):
        lines.append(f"  part {j}:  {_hosts(list(p.hosts), counts)}: {_n(p.machines, 'machine')}")
        if p.answer is None:
            lines.append("           no answer even alone: its hosts' own conflict (cpusolve POOL) stays")
        else:
            lines.append(f"           -cpu {p.answer} ({_n(p.features, 'guest feature')})")
            if p.threads > 1:
                lines.append(f"           with a vCPU topology of threads={p.threads} per core (-smp ...,"
                             f"threads={p.threads}; libvirt <topology threads='{p.threads}'/>)")
        lines.append(f"           VMs here may reach {_n(p.reach_after, 'machine')} (was {p.reach_before:,})"
                     + (f"; {'domain' if len(p.domains) == 1 else 'domains'} {', '.join(map(str, p.domains))} "
                        "of the split pool" if p.domains else ""))
    lines.append(f"  guest features x machines: {c.value_before:,} -> {c.value_after:,}")
    for note in c.notes:
        lines.append(f"  note: {note}")
    return lines


def _dot(result: SplitResult) -> str:
    directed = result.before.directed
    arrow = " -> " if directed else " -- "
    lines = [f"{'digraph' if directed else 'graph'} cpusolve_split {{",
             "  graph [rankdir=LR, fontname=Helvetica];",
             "  node [shape=box, style=filled, fontname=Helvetica];"]
    counts = {r.name: r.count for d in result.before.domains for r in d.hosts}
    for i, c in enumerate(result.components, start=1):
        for j, p in enumerate(c.parts, start=1):
            colour = PALETTE[(j - 1) % len(PALETTE)] if p.answer else "#ff6666"
            lines.append(f"  subgraph cluster_{i}_{j} {{")
            title = f"component {i} part {j}: {p.answer.split(',')[0] if p.answer else 'NO ANSWER'}"
            lines.append(f"    label={_q(title)}; style=rounded;")
            for h in p.hosts:
                lines.append(f"    {_q(h)} [label={_q(host_label(h, counts))}, fillcolor={_q(colour)}];")
            lines.append("  }")
        inside = set(c.hosts)
        cut = set(c.cut_edges)
        seen = set()
        for a, b in _edges(result, inside):
            key = (a, b) if directed else tuple(sorted((a, b)))
            if key in seen:
                continue
            seen.add(key)
            cut_here = (a, b) in cut or (not directed and (b, a) in cut)
            style = ' [style=dashed, color="#d62728", label="cut"]' if cut_here else ""
            lines.append(f"  {_q(a)}{arrow}{_q(b)}{style};")
        for g, into in c.cut_groups:
            for m in into:
                if len(m) > 1:
                    for a, b in zip(m, m[1:], strict=False):
                        lines.append(f"  {_q(a)}{arrow}{_q(b)} [style=dotted, label={_q(f'group {g}')}];")
            firsts = [m[0] for m in into]
            for a, b in zip(firsts, firsts[1:], strict=False):
                lines.append(f"  {_q(a)}{arrow}{_q(b)} [style=dashed, color=\"#d62728\", "
                             f"label={_q(f'group {g} cut')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edges(result: SplitResult, inside: set[str]):
    graph = result.before.graph
    if graph is None:
        return []
    return sorted(graph.subgraph(inside).edges())  # the component's own, not every edge per component
