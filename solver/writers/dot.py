"""The migration graph in Graphviz DOT, hosts grouped and coloured by their answer.

Render with ``cpusolve pool.json --format dot | dot -Tpng -o pool.png``.  Each host is
drawn once, in the cluster of the answer for VMs started on it (in a directed pool a host
can also be a target of other domains; edges show that).
"""

from __future__ import annotations

from cpusolve.report.records import Result

PALETTE = ["#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69",
           "#fccde5", "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f"]


def host_label(name: str, counts: dict[str, int]) -> str:
    """A host as pictures and lists name it: with its machine count where it stands for more."""
    return f"{name} (x{counts[name]})" if counts.get(name, 1) > 1 else name


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(result: Result) -> str:
    lines = [f"{'digraph' if result.directed else 'graph'} cpusolve {{",
             "  graph [rankdir=LR, fontname=Helvetica];",
             "  node [shape=box, style=filled, fontname=Helvetica];"]
    counts = {h.name: h.count for d in result.domains for h in d.hosts}
    for d in result.domains:
        answer = d.guest.model if d.guest else d.status.upper()
        colour = PALETTE[(d.index - 1) % len(PALETTE)] if d.guest else "#ff6666"
        lines.append(f"  subgraph cluster_{d.index} {{")
        lines.append(f"    label={_q(f'domain {d.index}: {answer}')}; style=rounded;")
        for name in d.starts:
            label = host_label(name, counts)
            lines.append(f"    {_q(name)} [label={_q(label)}, fillcolor={_q(colour)}];")
        lines.append("  }")
    arrow = " -> " if result.directed else " -- "
    for a, b in result.edges():
        lines.append(f"  {_q(a)}{arrow}{_q(b)};")
    # A migration group as a small hub every member joins (n lines, not n(n-1)).
    for i, members in enumerate(result.groups, start=1):
        hub_id = f"group {i}"
        while hub_id in counts:  # a host may be called "group 1"
            hub_id += " (migration group)"
        hub = _q(hub_id)
        lines.append(f"  {hub} [shape=circle, label={_q(f'group {i}')}, fillcolor=white];")
        for m in members:
            lines.append(f"  {_q(m)}{arrow}{hub}" + (" [dir=both];" if result.directed else ";"))
    lines.append("}")
    return "\n".join(lines) + "\n"
