"""``cpusolve split``: which hosts should stop sharing guests so that every migration
domain has a protected answer, losing as little as possible.

Per weakly connected migration component that holds a domain with no answer: hosts whose
kind has no answer even alone are cut off; the rest are partitioned into connected parts
whose kinds have a common answer (problem.partition): by the kinds' classes where they
decide it alone (:func:`_classes`, any size), else exactly by Z3 for components of up to
:data:`EXACT_HOSTS` hosts and :data:`EXACT_KINDS` kinds, else by first fit (README "Split
what cannot share a CPU").  The split pool is solved again; every answer printed passes
the checker there.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx

from cpusolve.backend.partition import best_partition
from cpusolve.core.guest import qemu_cpu_arg
from cpusolve.core.hosts import HostFacts
from cpusolve.core.pool import Pool
from cpusolve.domains.graph import domains, migration_graph
from cpusolve.domains.kinds import type_order
from cpusolve.engine.cache import SolveCache
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S
from cpusolve.engine.solve import solve
from cpusolve.errors import InputError
from cpusolve.planning.kindsets import KindAnswers
from cpusolve.planning.whatif import copy_pool
from cpusolve.problem.partition import PartitionProblem, parts_of
from cpusolve.problem.partition import score as partition_score
from cpusolve.report.split import ComponentSplit, Part, SplitResult

#: the exact (Z3) split's limits: hosts of a component, and kinds (every subset of kinds
#: is solved once to know which can share an answer, 2^8 - 1 at most)
EXACT_HOSTS = 16
EXACT_KINDS = 8


class Links:
    """Who migrates with whom, indexed once per split (a component's edges and groups are
    looked up, not found by scanning the whole pool per component)."""

    def __init__(self, pool: Pool):
        self.pool = pool
        self.groups_of: dict[str, list[int]] = {}
        for i, members in enumerate(pool.groups):
            for m in members:
                self.groups_of.setdefault(m, []).append(i)

    def edges(self, hosts) -> list[tuple[str, str]]:
        """The graph's edges (as stored) between ``hosts``."""
        return sorted((a, b) for a, b in self.pool.graph.subgraph(hosts).edges() if a != b)

    def groups(self, hosts) -> list[int]:
        return sorted({g for h in hosts for g in self.groups_of.get(h, ())})

    def pairs(self, hosts) -> set[tuple[str, str]]:
        """Host pairs that migrate (an edge either way, or one group), each once, a < b."""
        inside = set(hosts)
        out = {(a, b) if a < b else (b, a) for a, b in self.edges(hosts)}
        for g in self.groups(hosts):
            out.update(itertools.combinations(sorted(m for m in self.pool.groups[g] if m in inside), 2))
        return out

    def pairs_cut(self, hosts, label: dict, removed: set[tuple[str, str]] | None = None) -> int:
        """How many of ``pairs(hosts)`` no longer migrate: a group's pairs across parts of
        ``label`` (counted by part sizes, not pair by pair: a group of 1,000 hosts is 499,500
        pairs; a pair two groups share counts in each), and the pairs of hosts in no common
        group whose every edge is gone (``removed``; None: the edges across parts)."""
        cut = 0
        for g in self.groups(hosts):
            sizes: dict = {}
            for m in self.pool.groups[g]:
                sizes[label[m]] = sizes.get(label[m], 0) + 1
            total = sum(sizes.values())
            cut += (total * total - sum(n * n for n in sizes.values())) // 2
        edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for a, b in self.edges(hosts):
            edges.setdefault((a, b) if a < b else (b, a), []).append((a, b))
        for (a, b), stored in edges.items():
            if set(self.groups_of.get(a, ())) & set(self.groups_of.get(b, ())):
                continue
            gone = all(e in removed for e in stored) if removed is not None else label[a] != label[b]
            cut += gone
        return cut

    def pieces(self, members: list[str]) -> list[list[str]]:
        """``members`` split into the sets their own migration pairs connect."""
        inside = set(members)
        g = nx.Graph()
        g.add_nodes_from(members)
        g.add_edges_from(self.edges(members))
        for i in self.groups(members):
            mine = [m for m in self.pool.groups[i] if m in inside]
            g.add_edges_from(zip(mine, mine[1:], strict=False))
        return sorted((sorted(c) for c in nx.connected_components(g)), key=lambda c: c[0])


def split(pool: Pool, timeout: float = DEFAULT_TIMEOUT_S, held_back: float | None = None,
          jobs: int = 1) -> SplitResult:
    """The smallest change to ``pool``'s migration graph after which every domain has an
    answer; with ``held_back`` (a percentage), also split a component in two where that
    raises its guest features x machines by at least that much (exact components only)."""
    if held_back is not None and not 0 < held_back <= 10_000:
        raise InputError(f"--held-back must be a percentage above 0, not {held_back:g}")
    cache = SolveCache()
    before = solve(pool, timeout=timeout, cache=cache, jobs=jobs, detail=False)
    answers = KindAnswers(pool, cache, timeout)
    answers.known((dom.types, d.guest) for dom, d in zip(domains(pool), before.domains, strict=True) if d.solved)
    links = Links(pool)
    start_domain = {s: d for d in before.domains for s in d.starts}
    graph = migration_graph(pool)
    comps = sorted((sorted(h for h in comp if h in pool.hosts) for comp in nx.weakly_connected_components(graph)),
                   key=lambda c: c[0] if c else "")
    labels_of: dict[str, tuple[int, int]] = {}  # host -> (component number, part): groups split by it
    cut: set[tuple[str, str]] = set()  # the graph's edges removed
    plans = []
    for number, comp in enumerate(c for c in comps if c):
        bad = any(start_domain[h].guest is None and start_domain[h].status == "infeasible" for h in comp)
        if not bad and held_back is None:
            continue
        plan = _plan(pool, links, comp, answers, timeout, None if bad else held_back)
        if plan is None:
            continue
        parts, method, alone = plan
        for p, members in enumerate(parts):
            for h in members:
                labels_of[h] = (number, p)
        removed = {(a, b) for a, b in links.edges(comp) if labels_of[a] != labels_of[b]}
        if pool.directed and removed:
            parts, removed = _restore(pool, links, comp, labels_of, removed, set(alone), answers)
        cut |= removed
        plans.append((comp, parts, method, alone, "infeasible" if bad else "held-back", removed))
    new = _cut(pool, labels_of, cut)
    after = solve(new, timeout=timeout, cache=cache, jobs=jobs, detail=False) if plans else before
    after_domain = {s: d for d in after.domains for s in d.starts}
    out = [_component(pool, links, comp, parts, method, alone, reason, start_domain, after_domain, labels_of,
                      removed)
           for comp, parts, method, alone, reason, removed in plans]
    skipped = tuple(sorted(h for d in before.domains if d.status == "timeout" for h in d.starts))
    return SplitResult(pool.source, tuple(out), before, after, skipped)


def _plan(pool: Pool, links: Links, comp: list[str], answers: KindAnswers, timeout: float, held_back: float | None):
    """The parts of one component (lists of host names), how they were found, and the hosts
    cut off alone; None when a held-back component gains too little."""
    kinds = sorted({pool.hosts[h].facts for h in comp}, key=type_order)
    alone = [h for h in comp if not answers.feasible(frozenset({pool.hosts[h].facts}))]
    cut_off = set(alone)
    rest = [h for h in comp if h not in cut_off]
    parts: list[list[str]] = []
    method = "exact: Z3"
    if rest:
        present = {pool.hosts[h].facts for h in rest}
        live = [k for k in kinds if k in present]
        classes = _classes(live, answers) if held_back is None else None
        if classes is not None:
            parts = [piece for members in classes
                     for piece in links.pieces([h for h in rest if pool.hosts[h].facts in members])]
            parts.sort(key=lambda piece: piece[0])
            method = "exact: kind classes"
        elif len(rest) <= EXACT_HOSTS and len(live) <= EXACT_KINDS:
            found = _exact(pool, links, rest, live, answers, timeout, held_back)
            if found == "gain too small":
                return None
            if found is None:
                method = "heuristic (the exact search ran out of time)"
            else:
                parts = found
        else:
            if held_back is not None:
                return None
            method = "heuristic"
        if not parts:
            parts = _first_fit(pool, links, rest, live, answers)
    return [*parts, *([h] for h in alone)], method, alone


def _classes(kinds: list[HostFacts], answers: KindAnswers) -> list[set[HostFacts]] | None:
    """The kinds as classes, where that decides the split alone: when two kinds share an
    answer exactly when they are in one class, and each class's kinds all share one.

    Then every part lies within a class (a part across classes holds a pair with no answer)
    and is connected, so there are at least as many parts as connected pieces of the
    classes' hosts, and those pieces are parts: the fewest parts are exactly the pieces,
    one partition, so the later objectives have nothing left to choose (README "Split what
    cannot share a CPU")."""
    classes: list[list[HostFacts]] = []
    for k in kinds:
        home = [c for c in classes if answers.feasible(frozenset({c[0], k}))]
        if len(home) > 1:
            return None  # k shares an answer with kinds of two classes: no classes
        if home:
            home[0].append(k)
        else:
            classes.append([k])
    for c in classes:
        if len(c) > 1 and not answers.feasible(frozenset(c)):
            return None  # the class's kinds do not all share an answer (nor, then, pairwise)
    for i, c in enumerate(classes):  # no pair across classes shares an answer
        for other in classes[i + 1:]:
            if any(answers.feasible(frozenset({a, b})) for a in c for b in other):
                return None
    return [set(c) for c in classes]


def _exact(pool: Pool, links: Links, hosts: list[str], kinds: list[HostFacts], answers: KindAnswers, timeout: float,
           held_back: float | None):
    index = {k: i for i, k in enumerate(kinds)}
    conflicts: list[frozenset[int]] = []
    features: dict[frozenset[int], int] = {}
    for size in range(1, len(kinds) + 1):
        for combo in itertools.combinations(range(len(kinds)), size):
            kset = frozenset(combo)
            if any(c <= kset for c in conflicts):
                continue  # a superset of a set without an answer has none
            value = answers.features(frozenset(kinds[i] for i in combo))
            if value is None:
                conflicts.append(kset)
            else:
                features[kset] = value
    where = {h: i for i, h in enumerate(hosts)}
    problem = PartitionProblem(
        hosts=tuple(hosts), weight=tuple(pool.hosts[h].count for h in hosts),
        kind=tuple(index[pool.hosts[h].facts] for h in hosts),
        pairs=tuple(sorted((where[a], where[b]) for a, b in links.pairs(hosts))),
        conflicts=tuple(conflicts), features=features)
    if held_back is None:
        answer = best_partition(problem, timeout)
    else:
        whole = partition_score(problem, tuple(0 for _ in hosts))
        answer = best_partition(problem, timeout, max_parts=2, min_parts=2)
        if answer.status == "sat":
            two = partition_score(problem, answer.labels)
            if whole is not None and (two is None or two.value < whole.value * (1 + held_back / 100)):
                return "gain too small"
        elif answer.status == "unsat":
            return "gain too small"
    if answer.status != "sat":
        return None
    return [[hosts[i] for i in members] for members in parts_of(answer.labels)]


def _first_fit(pool: Pool, links: Links, hosts: list[str], kinds: list[HostFacts],
               answers: KindAnswers) -> list[list[str]]:
    """Kinds by machines (most first), each into the first bin whose kinds still share an
    answer, else a new bin; each bin's hosts, split where they are not connected."""
    machines = {k: sum(pool.hosts[h].count for h in hosts if pool.hosts[h].facts == k) for k in kinds}
    order = sorted(kinds, key=lambda k: (-machines[k], type_order(k)))
    bins: list[set[HostFacts]] = []
    for k in order:
        for b in bins:
            if answers.feasible(frozenset(b | {k})):
                b.add(k)
                break
        else:
            bins.append({k})
    out = []
    for b in bins:
        members = [h for h in hosts if pool.hosts[h].facts in b]
        out.extend(links.pieces(members))
    return out


def _cut(pool: Pool, labels_of: dict[str, tuple[int, int]], cut: set[tuple[str, str]]) -> Pool:
    """The pool without the ``cut`` edges, each group split by part."""
    new = copy_pool(pool)
    if not labels_of:
        return new
    new.graph.remove_edges_from(sorted(cut))
    groups = []
    for members in pool.groups:
        by_part: dict = {}
        for m in members:
            by_part.setdefault(labels_of.get(m), []).append(m)
        groups.extend(tuple(ms) for ms in by_part.values() if len(ms) > 1)
    new.groups = groups
    return new


def _restore(pool: Pool, links: Links, comp: list[str], labels_of, removed: set[tuple[str, str]],
             alone: set[str], answers: KindAnswers) -> tuple[list[list[str]], set[tuple[str, str]]]:
    """In a directed pool, put back each cut edge (in order) after which every host's VMs
    still reach only hosts that share an answer: a part need not share one answer as a
    whole where one-way edges keep reach sets apart.  The parts are then the hosts the kept
    edges and the split groups still connect."""
    g = nx.DiGraph()
    g.add_nodes_from(comp)
    g.add_edges_from((a, b) for a, b in links.edges(comp) if (a, b) not in removed)
    for i in links.groups(comp):
        by_part: dict = {}
        for m in pool.groups[i]:
            by_part.setdefault(labels_of[m], []).append(m)
        for members in by_part.values():
            hub = ("group", i, labels_of[members[0]])
            g.add_edges_from((m, hub) for m in members)
            g.add_edges_from((hub, m) for m in members)
    facts = {h: pool.hosts[h].facts for h in comp}

    def reach_ok(start: str) -> bool:
        hosts = ({start} | nx.descendants(g, start)) & facts.keys()
        return answers.feasible(frozenset(facts[h] for h in hosts))

    kept_cut = set(removed)
    for a, b in sorted(removed):
        if a in alone or b in alone or not answers.feasible(frozenset({facts[a], facts[b]})):
            continue  # a's VMs would reach b: two kinds with no common answer
        g.add_edge(a, b)
        starts = ({a} | nx.ancestors(g, a)) & facts.keys()
        if all(reach_ok(h) for h in sorted(starts)):
            kept_cut.discard((a, b))
        else:
            g.remove_edge(a, b)
    parts = [sorted(c & facts.keys()) for c in nx.weakly_connected_components(g)]
    return sorted((p for p in parts if p), key=lambda p: p[0]), kept_cut


def _component(pool, links, comp, parts, method, alone, reason, start_domain, after_domain,
               labels_of, removed) -> ComponentSplit:
    count = {h: pool.hosts[h].count for h in comp}

    def reach(domain_of, hosts) -> int:
        names = {r.name for s in hosts for r in domain_of[s].hosts}
        return sum(pool.hosts[n].count for n in names)

    def value(domain_of) -> int:
        return sum(count[h] * len(domain_of[h].features) for h in comp if domain_of[h].guest is not None)

    out_parts = []
    for members in parts:
        doms = sorted({after_domain[h].index for h in members})
        answers = {after_domain[h].guest for h in members}
        guest = next(iter(answers)) if len(answers) == 1 else None
        out_parts.append(Part(
            hosts=tuple(members), machines=sum(count[h] for h in members),
            answer=qemu_cpu_arg(guest) if guest is not None else (None if None in answers else "several (see domains)"),
            features=min((len(after_domain[h].features) for h in members if after_domain[h].guest is not None),
                         default=0),
            reach_before=reach(start_domain, members), reach_after=reach(after_domain, members),
            domains=tuple(doms), threads=guest.threads if guest is not None else 1))
    edges = links.edges(comp)
    cut = sorted(removed)
    if not pool.directed:  # an undirected pool's edge is stored both ways: once each
        stored = set(edges)
        cut = [(a, b) for a, b in cut if a < b or (b, a) not in stored]
    cut_groups = []
    for i in links.groups(comp):
        by_part: dict = {}
        for m in pool.groups[i]:
            by_part.setdefault(labels_of[m], []).append(m)
        if len(by_part) > 1:
            cut_groups.append((i + 1, tuple(tuple(sorted(v)) for v in by_part.values())))
    pairs_cut = links.pairs_cut(comp, labels_of, removed)
    cut_edges = tuple(sorted(cut))
    notes = []
    if pool.directed:
        notes.append("directed: a cut edge is put back wherever every host's VMs still reach only hosts that "
                     "share an answer, so a part may hold several domains")
    return ComponentSplit(
        hosts=tuple(comp), machines=sum(count.values()), reason=reason, method=method, parts=tuple(out_parts),
        cut_edges=cut_edges, cut_groups=tuple(cut_groups), pairs_cut=pairs_cut,
        value_before=value(start_domain), value_after=value(after_domain), alone=tuple(alone),
        notes=tuple(notes))


def split_pool_file(result: SplitResult, pool_path: str, out_path: str) -> dict:
    """The pool file of ``pool_path`` with the split applied, for ``out_path``: the cut edges
    gone, every group split by part (a file without a migration section becomes its parts
    as groups), hosts with no answer alone in no group; relative fact-file paths rewritten
    for where the new file goes.  Everything else is kept as the file states it."""
    import os

    from cpusolve.inputs.pool_file import source_dir
    from cpusolve.inputs.untrusted import parse_json, read_text

    if pool_path in ("-", "<pool>", "<graph>"):
        raise InputError("--write-pool needs the pool as a file (not stdin or a dict)")
    data = parse_json(read_text(pool_path, pool_path, what="a pool file"), pool_path, "pool file")
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
        raise InputError(f"--write-pool: {pool_path} is not a pool.json (a node-link graph cannot be rewritten)")
    part_of = {h: (i, j) for i, c in enumerate(result.components) for j, p in enumerate(c.parts) for h in p.hosts}
    migration = dict(data.get("migration") or {})
    if "migration" not in data:
        migration["groups"] = [list(data["hosts"])]
    directed = migration.get("directed", False)

    def kept(a: str, b: str) -> bool:
        return a not in part_of or part_of[a] == part_of.get(b, part_of[a])

    if "edges" in migration:
        migration["edges"] = [e for e in migration["edges"] if kept(e[0], e[1])]
    if "groups" in migration:
        groups = []
        for members in migration["groups"]:
            by_part: dict = {}
            for m in members:
                by_part.setdefault(part_of.get(m), []).append(m)
            groups.extend(ms for ms in by_part.values() if len(ms) > 1)
        migration["groups"] = groups
    migration["directed"] = directed
    out = dict(data)
    out["migration"] = migration
    old_dir, new_dir = source_dir(pool_path), (Path(out_path).parent if out_path not in (None, "-") else Path("."))
    hosts = {}
    for name, entry in data["hosts"].items():
        entry = dict(entry) if isinstance(entry, dict) else entry
        if isinstance(entry, dict):
            for key in ("facts", "capabilities"):
                value = entry.get(key)
                if isinstance(value, str) and not os.path.isabs(value):
                    entry[key] = os.path.relpath(os.path.join(old_dir, value), new_dir)
        hosts[name] = entry
    out["hosts"] = hosts
    note = f"split by cpusolve split from {Path(pool_path).name}"
    out["description"] = f"{data['description']} ({note})" if isinstance(data.get("description"), str) else note
    return out
