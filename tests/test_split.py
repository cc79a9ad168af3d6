"""``cpusolve split``: the parts it proposes all have checked answers, and no better split
exists (a brute force over every set of removed edges, which never sees the split's own
Z3 model, finds none on small pools)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpusolve.api import load_pool, solve
from cpusolve.api import split as api_split
from cpusolve.backend.partition import best_partition
from cpusolve.cli import main
from cpusolve.core.pool import Pool
from cpusolve.encodings.catalog import catalog
from cpusolve.engine.solve import domain_requirements
from cpusolve.planning import split as split_mod
from cpusolve.problem.partition import PartitionProblem
from cpusolve.problem.partition import score as partition_score
from cpusolve.verify.checker import check_answer

from .conftest import pool_dict
from .test_properties import pools

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MC = ["md-clear", "flush-l1d", "ssbd", "stibp"]
CAT = catalog()

#: host entries that often cannot share a guest (Zen 2 next to Zen 3/4; Skylake-SP, whose
#: TSX cannot be turned off, next to hosts without TSX; mixed vendors), and some that can
ENTRIES = {
    "rome": {"cpu": "EPYC-Rome-v4", "add": ["ibpb-brtype"]},
    "milan": {"cpu": "EPYC-Milan-v2", "add": ["ibpb-brtype", "verw-clear"]},
    "genoa": {"cpu": "EPYC-Genoa-v1", "add": ["ibpb-brtype", "verw-clear"]},
    "naples": {"cpu": "EPYC-v4"},
    "skx": {"cpu": "Skylake-Server-v4", "add": ["md-clear", "flush-l1d", "ssbd", "stibp"]},
    "clx": {"cpu": "Cascadelake-Server-v5", "add": ["md-clear", "flush-l1d", "ssbd", "stibp"],
            "remove": ["hle", "rtm"]},
    "icx": {"cpu": "Icelake-Server-v7", "add": ["md-clear", "flush-l1d", "ssbd", "stibp"]},
    "bdw": {"cpu": "Broadwell-v4", "add": ["md-clear", "flush-l1d", "ssbd", "stibp"]},
}


def checked(result) -> None:
    """Every answer of the split pool passes the independent checker (again, here)."""
    pool = POOLS[id(result)]
    assert result.after.domains
    for d in result.after.domains:
        if d.guest is None:
            continue
        types = tuple(dict.fromkeys(pool.hosts[r.name].facts for r in d.hosts))
        req = domain_requirements(pool.requirements, types)
        assert check_answer(CAT, types, req, d.guest) == [], d.index


POOLS: dict = {}


def run_split(data: dict, **kw):
    pool = load_pool(data)
    result = split_mod.split(pool, timeout=30, **kw)
    POOLS[id(result)] = pool  # for checked()
    return result


# --- the examples ----------------------------------------------------------------------


def test_amd_cell_splits_rome_from_milan_and_genoa():
    result = run_split(json.loads((EXAMPLES / "amd-split.json").read_text()))
    assert [d.status for d in result.before.domains] == ["infeasible"]
    (c,) = result.components
    assert c.method == "exact: kind classes" and c.reason == "infeasible"
    assert sorted(p.hosts for p in c.parts) == [("genoa-01", "milan-01", "milan-02"), ("rome-01", "rome-02")]
    assert c.pairs_cut == 6  # 3 x 2 host pairs of the group
    assert c.cut_groups == ((1, (("genoa-01", "milan-01", "milan-02"), ("rome-01", "rome-02"))),)
    assert all(d.solved for d in result.after.domains) and result.exit_code == 0
    assert {p.reach_before for p in c.parts} == {88} and sorted(p.reach_after for p in c.parts) == [40, 48]
    assert c.value_before == 0 and c.value_after == sum(p.features * p.machines for p in c.parts) > 0
    checked(result)


def test_directed_evacuation_cuts_the_rome_to_milan_edges():
    result = run_split(json.loads((EXAMPLES / "epyc-evacuation.json").read_text()))
    (c,) = result.components
    assert c.cut_edges == (("rome-01", "milan-01"), ("rome-02", "milan-01"))
    assert all(d.solved for d in result.after.domains)
    checked(result)


def test_each_component_names_only_its_own_cuts():
    one = json.loads((EXAMPLES / "epyc-evacuation.json").read_text())
    hosts = {f"{c}{h}": e for c in ("a-", "b-") for h, e in one["hosts"].items()}
    edges = [[f"{c}{a}", f"{c}{b}"] for c in ("a-", "b-") for a, b in one["migration"]["edges"]]
    cell = json.loads((EXAMPLES / "amd-split.json").read_text())
    hosts |= {f"c-{h}": e for h, e in cell["hosts"].items()}
    groups = [[f"c-{h}" for h in cell["migration"]["groups"][0]]]
    result = run_split(pool_dict(hosts, {"directed": True, "edges": edges, "groups": groups}))
    a, b, c = result.components
    assert a.cut_edges == (("a-rome-01", "a-milan-01"), ("a-rome-02", "a-milan-01")) and not a.cut_groups
    assert b.cut_edges == (("b-rome-01", "b-milan-01"), ("b-rome-02", "b-milan-01")) and not b.cut_groups
    assert c.cut_edges == () and [g for g, _ in c.cut_groups] == [1] and c.pairs_cut == 6
    assert all(d.solved for d in result.after.domains)
    checked(result)


def test_a_host_with_no_answer_alone_is_cut_off_and_said_so():
    result = run_split(json.loads((EXAMPLES / "mixed-inline.json").read_text()))
    (c,) = result.components
    assert c.alone == ("skx-01",)
    lone = next(p for p in c.parts if p.hosts == ("skx-01",))
    assert lone.answer is None
    others = [d for d in result.after.domains if "skx-01" not in d.starts]
    assert others and all(d.solved for d in others)
    assert result.exit_code == 1  # the lone host's own domain still has no answer


def test_held_back_splits_only_above_the_threshold():
    data = json.loads((EXAMPLES / "one-old-host.json").read_text())
    assert run_split(data).components == ()
    (c,) = run_split(data, held_back=10).components
    assert c.reason == "held-back" and sorted(p.hosts for p in c.parts) == [("bdw-legacy",), ("clx-01", "clx-02")]
    assert c.value_after >= c.value_before * 1.10
    assert run_split(data, held_back=c.value_after * 100 / c.value_before).components == ()


def test_feasible_pool_is_left_alone():
    result = run_split(json.loads((EXAMPLES / "intel-rack.json").read_text()))
    assert result.components == () and result.after is result.before


def test_beyond_the_exact_size_first_fit_still_gives_every_part_an_answer(monkeypatch):
    monkeypatch.setattr(split_mod, "EXACT_HOSTS", 1)
    monkeypatch.setattr(split_mod, "_classes", lambda kinds, answers: None)
    result = run_split(json.loads((EXAMPLES / "amd-split.json").read_text()))
    (c,) = result.components
    assert c.method == "heuristic"
    assert all(d.solved for d in result.after.domains)
    checked(result)


@pytest.mark.parametrize("classes", [True, False])
def test_a_large_mixed_group_splits_by_kind_classes_or_first_fit(monkeypatch, classes):
    if not classes:
        monkeypatch.setattr(split_mod, "_classes", lambda kinds, answers: None)
    hosts = {f"{k}-{i:02d}": dict(ENTRIES[k], count=2) for k in ("rome", "milan", "genoa") for i in range(7)}
    result = run_split(pool_dict(hosts, {"groups": [sorted(hosts)]}))
    (c,) = result.components
    assert c.method == ("exact: kind classes" if classes else "heuristic") and len(c.hosts) == 21
    assert len(c.parts) == 2 and all(d.solved for d in result.after.domains)
    assert {frozenset(h.split("-")[0] for h in p.hosts) for p in c.parts} == {
        frozenset({"rome"}), frozenset({"milan", "genoa"})}
    assert c.pairs_cut == 7 * 14


# --- brute force -----------------------------------------------------------------------


def brute_force(pool: Pool) -> tuple[int, int, int]:
    """The best (-parts, features x machines, -pairs cut) over every set of removed edges,
    each resulting domain solved on its own (hosts with no answer alone are cut off)."""
    hosts = sorted(pool.hosts)
    pairs = sorted({(a, b) if a < b else (b, a) for a, b in pool.graph.edges() if a != b})
    for g in pool.groups:
        pairs = sorted(set(pairs) | set(itertools.combinations(sorted(g), 2)))
    memo: dict[frozenset, int | None] = {}

    def answer(members: frozenset) -> int | None:
        if members not in memo:
            sub = Pool(hosts={h: pool.hosts[h] for h in members}, graph=nx.DiGraph(), directed=False,
                       requirements=pool.requirements, source="brute", groups=[tuple(sorted(members))])
            sub.graph.add_nodes_from(members)
            (d,) = solve(sub, timeout=30).domains
            memo[members] = len(d.features) if d.solved else None
        return memo[members]

    alone = {h for h in hosts if answer(frozenset({h})) is None}
    best = None
    for r in range(len(pairs) + 1):
        for removed in itertools.combinations(pairs, r):
            g = nx.Graph()
            g.add_nodes_from(hosts)
            g.add_edges_from(p for p in pairs if p not in removed)
            value, ok, parts = 0, True, 0
            for comp in nx.connected_components(g):
                parts += 1
                comp = frozenset(comp)
                if comp & alone:
                    ok = ok and len(comp) == 1
                    continue
                size = answer(comp)
                if size is None:
                    ok = False
                    break
                value += size * sum(pool.hosts[h].count for h in comp)
            if ok:
                key = (-parts, value, -len(removed))
                best = key if best is None or key > best else best
    return best


@st.composite
def conflicting_pools(draw) -> dict:
    n = draw(st.integers(2, 5))
    names = [f"h{i}" for i in range(n)]
    hosts = {h: dict(ENTRIES[draw(st.sampled_from(sorted(ENTRIES)))], count=draw(st.integers(1, 9))) for h in names}
    pair = st.tuples(st.sampled_from(names), st.sampled_from(names)).filter(lambda p: p[0] < p[1])
    edges = draw(st.lists(pair, unique=True, min_size=1, max_size=6))
    mig: dict = {"edges": [list(e) for e in edges]}
    if draw(st.integers(0, 3)) == 0:
        mig = {"groups": [names[: draw(st.integers(2, n))]], "edges": mig["edges"][:2]}
    return pool_dict(hosts, mig, policy=draw(st.sampled_from(["strict", "strict", "compat"])))


def undirected(data: dict) -> dict:
    """A random pool with its migration made undirected (the brute force reads components)."""
    mig = dict(data.get("migration") or {})
    mig.pop("directed", None)
    names = sorted(data["hosts"])
    if len(names) > 1 and not mig.get("edges") and not mig.get("groups"):
        mig["edges"] = [list(p) for p in zip(names, names[1:], strict=False)]
    return data | {"migration": mig}


def score_of(result) -> tuple[int, int, int]:
    parts = sum(len(c.parts) for c in result.components)
    untouched = [d for d in result.after.domains if not any(h in {x for c in result.components for x in c.hosts}
                                                             for h in d.starts)]
    parts += len(untouched)
    value = sum(c.value_after for c in result.components)
    value += sum(len(d.features) * sum(r.count for r in d.hosts) for d in untouched if d.solved)
    return (-parts, value, -sum(c.pairs_cut for c in result.components))


def check_against_brute_force(data: dict) -> None:
    pool = load_pool(data)
    result = split_mod.split(pool, timeout=30)
    for d in result.after.domains:  # every part that can have an answer has one
        if not d.solved:
            assert all(h in {a for c in result.components for a in c.alone} for h in d.starts), d
    assert score_of(result) == brute_force(pool)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(conflicting_pools())
def test_no_better_split_exists_on_conflicting_pools(data):
    check_against_brute_force(data)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(pools())
def test_no_better_split_exists_on_random_pools(data):
    check_against_brute_force(undirected(data))


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(pools())
def test_directed_random_pools_split_into_parts_with_answers(data):
    pool = load_pool(data)
    result = split_mod.split(pool, timeout=30)
    alone = {a for c in result.components for a in c.alone}
    changed = {h for c in result.components for h in c.hosts}
    for d in result.after.domains:
        if set(d.starts) & changed and not set(d.starts) & alone:
            assert d.solved, d
    if pool.directed:
        assert_no_cut_edge_can_come_back(pool, result, alone)


def assert_no_cut_edge_can_come_back(pool: Pool, result, alone) -> None:
    """Each cut edge between hosts with answers is needed: put back alone (into the split
    pool, solved again), some domain of its component loses its answer."""
    from cpusolve.planning.whatif import copy_pool

    split_pool = copy_pool(pool)
    split_pool.graph.remove_edges_from([e for c in result.components for e in c.cut_edges])
    split_pool.groups = list(result.after.groups)
    for c in result.components:
        for a, b in c.cut_edges:
            if a in alone or b in alone:
                continue
            trial = copy_pool(split_pool)
            trial.graph.add_edge(a, b)
            mine = set(c.hosts)
            again = solve(trial, timeout=30)
            assert any(not d.solved for d in again.domains if set(d.starts) & mine), (a, b)


def test_directed_one_way_edges_stay_where_reach_sets_allow():
    """skx -> bdw-01 <- bdw-spare, and bdw-01 -> skx: the spare (no IBRS) cannot share a
    guest with the Skylake host, but both may evacuate to bdw-01; only the edge that lets the
    spare's VMs reach the Skylake host (through bdw-01) has to go."""
    hosts = {"skx": {"cpu": "Skylake-Server-v4", "add": MC},
             "bdw-01": {"cpu": "Broadwell-v4", "add": MC},
             "bdw-spare": {"cpu": "Broadwell-v4", "add": MC, "remove": ["spec-ctrl"]}}
    edges = [["skx", "bdw-01"], ["bdw-spare", "bdw-01"], ["bdw-01", "skx"]]
    result = run_split(pool_dict(hosts, {"directed": True, "edges": edges}))
    (c,) = result.components
    assert all(d.solved for d in result.after.domains)
    assert len(c.cut_edges) == 1 and len(c.parts) <= 2
    pool = load_pool(pool_dict(hosts, {"directed": True, "edges": edges}))
    assert_no_cut_edge_can_come_back(pool, result, set())
    checked(result)


# --- command line ----------------------------------------------------------------------


def test_cli_json_and_dot():
    runner = CliRunner()
    out = runner.invoke(main, ["split", str(EXAMPLES / "amd-split.json"), "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["schema"] == "cpusolve-split/1" and data["without_answer_after"] == 0
    assert data["components"][0]["cut_groups"][0]["group"] == 1
    dot = runner.invoke(main, ["split", str(EXAMPLES / "epyc-evacuation.json"), "--format", "dot"])
    assert dot.exit_code == 0
    assert '"rome-01" -> "milan-01" [style=dashed, color="#d62728", label="cut"];' in dot.output


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_cli_refuses_a_bad_held_back(value):
    out = CliRunner().invoke(main, ["split", str(EXAMPLES / "one-old-host.json"), "--held-back", value])
    assert out.exit_code == 2
    assert out.output.count("\n") == 1 and "held-back" in out.output


def test_api_split_takes_a_path_and_a_policy():
    result = api_split(str(EXAMPLES / "amd-split.json"), policy="strict")
    assert len(result.components) == 1


# --- the Z3 partition model against plain enumeration ----------------------------------


def set_partitions(items: list[int]):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in set_partitions(rest):
        for i in range(len(smaller)):
            yield smaller[:i] + [[first, *smaller[i]]] + smaller[i + 1:]
        yield [[first], *smaller]


@st.composite
def partition_problems(draw) -> PartitionProblem:
    n = draw(st.integers(1, 6))
    k = draw(st.integers(1, min(n, 4)))
    kind = tuple(draw(st.integers(0, k - 1)) for _ in range(n))
    kind = tuple(sorted(set(kind)).index(x) for x in kind)  # kinds 0..k'-1, all used
    k = max(kind) + 1
    pairs = tuple(sorted(set(draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(
        lambda p: p[0] < p[1]), max_size=10)))))
    conflicts: list[frozenset[int]] = []
    features: dict[frozenset[int], int] = {}
    for size in range(1, k + 1):
        for combo in itertools.combinations(range(k), size):
            kset = frozenset(combo)
            if any(c <= kset for c in conflicts):
                continue
            if size > 1 and draw(st.integers(0, 3)) == 0:
                conflicts.append(kset)
                continue
            # a superset's answer is never larger than a subset's (monotone)
            cap = min([features[kset - {x}] for x in kset if kset - {x} in features] or [100])
            features[kset] = draw(st.integers(max(0, cap - 30), cap))
    return PartitionProblem(hosts=tuple(f"h{i}" for i in range(n)),
                            weight=tuple(draw(st.integers(1, 9)) for _ in range(n)), kind=kind, pairs=pairs,
                            conflicts=tuple(conflicts), features=features)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(partition_problems())
def test_z3_partition_is_the_enumerated_optimum(problem):
    n = len(problem.hosts)
    best = None
    for parts in set_partitions(list(range(n))):
        labels = [0] * n
        for p, members in enumerate(parts):
            for i in members:
                labels[i] = p
        s = partition_score(problem, tuple(labels))
        if s is not None and (best is None or s.key() > best.key()):
            best = s
    answer = best_partition(problem, timeout=30)
    if best is None:
        assert answer.status == "unsat"
        return
    assert answer.status == "sat"
    assert partition_score(problem, answer.labels) == best
    # where the kinds fall into classes, the connected pieces of each class are the optimum
    classes = split_mod._classes(list(range(problem.kinds)), Feasible(problem))
    if classes is not None:
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edges_from((a, b) for a, b in problem.pairs if any({problem.kind[a], problem.kind[b]} <= c
                                                                 for c in classes))
        labels = [0] * n
        for p, comp in enumerate(nx.connected_components(g)):
            for i in comp:
                labels[i] = p
        assert partition_score(problem, tuple(labels)) == best


class Feasible:
    """A partition problem's feasibility table in the shape split._classes asks it."""

    def __init__(self, problem: PartitionProblem):
        self.problem = problem

    def feasible(self, kinds: frozenset[int]) -> bool:
        return kinds in self.problem.features


# --- held back: the best split in two, against the brute force --------------------------


def brute_force_two(pool: Pool) -> tuple[int, int] | None:
    """The best (features x machines, -pairs cut) over removed-edge sets leaving exactly two
    connected parts, each with an answer; None when none beats the whole component."""
    hosts = sorted(pool.hosts)
    pairs = sorted({(a, b) if a < b else (b, a) for a, b in pool.graph.edges() if a != b})
    (whole,) = solve(pool, timeout=30).domains
    base = len(whole.features) * sum(pool.hosts[h].count for h in hosts)
    best = None
    for r in range(1, len(pairs) + 1):
        for removed in itertools.combinations(pairs, r):
            g = nx.Graph()
            g.add_nodes_from(hosts)
            g.add_edges_from(p for p in pairs if p not in removed)
            comps = list(nx.connected_components(g))
            if len(comps) != 2:
                continue
            value = 0
            for comp in comps:
                sub = Pool(hosts={h: pool.hosts[h] for h in comp}, graph=nx.DiGraph(), directed=False,
                           requirements=pool.requirements, source="brute", groups=[tuple(sorted(comp))])
                sub.graph.add_nodes_from(comp)
                (d,) = solve(sub, timeout=30).domains
                if not d.solved:
                    value = None
                    break
                value += len(d.features) * sum(pool.hosts[h].count for h in comp)
            if value is not None and (best is None or (value, -r) > best):
                best = (value, -r)
    return best if best is not None and best[0] > base else None


@st.composite
def intel_pools(draw) -> dict:
    n = draw(st.integers(2, 4))
    names = [f"h{i}" for i in range(n)]
    hosts = {h: dict(ENTRIES[draw(st.sampled_from(["bdw", "clx", "icx", "skx"]))], count=draw(st.integers(1, 9)))
             for h in names}
    chain = [list(p) for p in zip(names, names[1:], strict=False)]  # connected
    pair = st.tuples(st.sampled_from(names), st.sampled_from(names)).filter(lambda p: p[0] < p[1])
    extra = [list(e) for e in draw(st.lists(pair, unique=True, max_size=2))]
    return pool_dict(hosts, {"edges": chain + [e for e in extra if e not in chain]})


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(intel_pools())
def test_held_back_split_is_the_best_split_in_two(data):
    pool = load_pool(data)
    result = split_mod.split(pool, timeout=30, held_back=1e-9)
    expected = brute_force_two(pool)
    if expected is None:
        assert result.components == ()
        return
    (c,) = result.components
    assert len(c.parts) == 2
    assert (c.value_after, -c.pairs_cut) == expected


def tie_problem(ac: int) -> PartitionProblem:
    """a - c - {b, b2} (b - b2 too); kinds A, B conflict; C goes with either side."""
    features = {frozenset({0}): 10, frozenset({1}): 10, frozenset({2}): 10, frozenset({0, 2}): ac,
                frozenset({1, 2}): 10}
    return PartitionProblem(hosts=("a", "c", "b", "b2"), weight=(1, 1, 1, 1), kind=(0, 2, 1, 1),
                            pairs=((0, 1), (1, 2), (1, 3), (2, 3)), conflicts=(frozenset({0, 1}),),
                            features=features)


def test_equal_value_splits_are_decided_by_fewest_cut_pairs():
    answer = best_partition(tie_problem(ac=10), timeout=30)
    assert answer.labels == (0, 1, 1, 1)  # {a} | {c, b, b2}: one pair cut, not two
    assert partition_score(tie_problem(10), answer.labels).cut == 1


def test_more_features_beat_fewer_cuts():
    answer = best_partition(tie_problem(ac=40), timeout=30)  # A+C's answer is much larger
    assert answer.labels == (0, 0, 1, 1)
    assert partition_score(tie_problem(40), answer.labels).cut == 2


def test_kinds_pairwise_sharing_but_not_all_three_are_no_classes():
    features = {frozenset(s): 10 for s in ({0}, {1}, {2}, {0, 1}, {1, 2}, {0, 2})}
    problem = PartitionProblem(hosts=("a", "b", "c"), weight=(1, 1, 1), kind=(0, 1, 2), pairs=((0, 1), (1, 2)),
                               conflicts=(frozenset({0, 1, 2}),), features=features)
    assert split_mod._classes([0, 1, 2], Feasible(problem)) is None
    answer = best_partition(problem, timeout=30)
    assert partition_score(problem, answer.labels).parts == 2


def test_a_pool_without_migration_is_one_group_not_a_path():
    """No 'migration' key: every host migrates with every other, so the two Rome hosts stay
    one part even though a Milan host comes between them in the file."""
    result = run_split(pool_dict({"rome-a": ENTRIES["rome"], "milan": ENTRIES["milan"], "rome-b": ENTRIES["rome"]}))
    (c,) = result.components
    assert sorted(p.hosts for p in c.parts) == [("milan",), ("rome-a", "rome-b")]
    assert c.pairs_cut == 2 and c.cut_edges == ()
    assert all(d.solved for d in result.after.domains)


@pytest.mark.parametrize("example, extra", [("amd-split.json", []), ("epyc-evacuation.json", []),
                                            ("mixed-inline.json", []), ("one-old-host.json", ["--held-back", "10"])])
def test_write_pool_gives_a_pool_whose_answers_are_the_split_s(tmp_path, example, extra):
    out = tmp_path / "elsewhere" / "split.json"
    out.parent.mkdir()
    run = CliRunner().invoke(main, ["split", str(EXAMPLES / example), "--write-pool", str(out), "--format", "json",
                                    *extra])
    assert run.exit_code in (0, 1), run.output
    written = load_pool(str(out))  # fact-file paths still resolve from the new folder
    result = run_split(json.loads((EXAMPLES / example).read_text()), **(
        {"held_back": 10} if extra else {}))
    again = solve(written)
    assert [(d.starts, d.guest) for d in again.domains] == [(d.starts, d.guest) for d in result.after.domains]
    assert "split by cpusolve split" in json.loads(out.read_text())["description"]


def test_write_pool_refuses_stdin():
    run = CliRunner().invoke(main, ["split", "-", "--write-pool", "/tmp/x.json"],
                             input=(EXAMPLES / "amd-split.json").read_text())
    assert run.exit_code == 2 and "--write-pool needs the pool as a file" in run.output


def test_write_pool_rewrites_relative_fact_files_for_its_own_folder(tmp_path):
    import shutil

    src = tmp_path / "site" / "pool.json"
    (src.parent / "hosts").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "data" / "facts" / "x86_64-cpuid-EPYC-7502-32-Core.xml",
                src.parent / "hosts" / "rome.xml")
    src.write_text(json.dumps({"hosts": {"rome-real": {"facts": "hosts/rome.xml", "count": 4},
                                         "milan": ENTRIES["milan"]}}))
    out = tmp_path / "plans" / "split.json"
    out.parent.mkdir()
    run = CliRunner().invoke(main, ["split", str(src), "--write-pool", str(out)])
    assert run.exit_code in (0, 1), run.output
    data = json.loads(out.read_text())
    assert data["hosts"]["rome-real"]["facts"] == "../site/hosts/rome.xml"
    assert data["migration"]["groups"] == [] or all(len(g) > 1 for g in data["migration"]["groups"])
    assert len(solve(load_pool(str(out))).domains) == 2


def test_write_pool_and_a_report_that_cannot_be_written_leave_nothing_behind(tmp_path):
    """Both files or neither (writers.atomic.write_all_atomic): an -o in a missing folder
    fails with one line and the split pool is not written either (nor a temporary)."""
    pool_out = tmp_path / "split.json"
    run = CliRunner().invoke(main, ["split", str(EXAMPLES / "amd-split.json"), "--write-pool", str(pool_out),
                                    "-o", str(tmp_path / "missing" / "report.txt")])
    assert run.exit_code == 2 and "cannot write" in run.output and "report.txt" in run.output
    assert list(tmp_path.iterdir()) == []
    run = CliRunner().invoke(main, ["split", str(EXAMPLES / "amd-split.json"), "--write-pool", str(pool_out),
                                    "-o", str(pool_out)])
    assert run.exit_code == 2 and "name the same file" in run.output
    assert list(tmp_path.iterdir()) == []
