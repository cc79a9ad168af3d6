"""``cpusolve rollout``: every step of a plan keeps every running guest runnable and
protected on every host it may reach (replayed here host by host with the public check()),
and a rollout is called impossible only when a brute force over every order of single
host updates finds none."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpusolve.api import check, load_pool, solve
from cpusolve.api import rollout as api_rollout
from cpusolve.cli import main
from cpusolve.core.hosts import Host
from cpusolve.core.pool import Pool
from cpusolve.domains.graph import domains
from cpusolve.errors import InputError
from cpusolve.inputs.guest_cpu import parse_qemu_cpu
from cpusolve.inputs.guests_file import GuestSpec, read_guests
from cpusolve.planning import rollout as rollout_mod
from cpusolve.planning.changes import plan_changes
from cpusolve.writers.rollout import render_rollout

from .conftest import pool_dict

ROOT = Path(__file__).resolve().parents[1]
TSX = ROOT / "examples" / "tsx-rollout"
TSX_CHANGES = ["skx-*:-hle,-rtm", "clx-*:-hle,-rtm"]
MC = ["md-clear", "flush-l1d", "ssbd", "stibp"]


def tsx_pool():
    return load_pool(str(TSX / "pool.json"))


def run_example(changes=TSX_CHANGES, guests=None):
    pool = tsx_pool()
    specs = read_guests(str(guests or TSX / "guests.json"), pool)
    return pool, specs, rollout_mod.rollout(pool, specs, changes, timeout=30)


# --- the example ---------------------------------------------------------------------


def test_tsx_removal_changes_the_tsx_guests_first_then_updates_the_hosts():
    pool, specs, result = run_example()
    assert result.status == "ok" and result.exit_code == 0
    actions = [s.action for s in result.steps]
    assert actions[0] == "change-cpus" and actions[1:] == ["update", "update"]
    assert {g for g, _ in result.steps[0].guests} == {"inmem-db", "ci-04"}
    by_name = {g.name: g for g in result.guests}
    assert by_name["web-01"].status == "unaffected" and not by_name["web-01"].breaks
    db = by_name["inmem-db"]
    assert db.status == "cpu-change" and "lacks hle, rtm" in db.breaks[0]
    (new,) = db.new_cpus
    assert new.startswith("Skylake-Server-v2,") and "-hle" in new and "-rtm" in new  # same model, TSX off
    assert sorted(h for s in result.steps[1:] for h in s.hosts) == ["clx-01", "clx-02", "skx-01", "skx-02"]
    assert result.states_checked == 4
    replay_with_public_check(pool, specs, result, TSX_CHANGES)


def test_the_tsx_update_really_removes_tsx_from_what_the_hosts_offer():
    plan = plan_changes(tsx_pool(), TSX_CHANGES)
    for name in ("skx-01", "clx-02"):
        u = plan.updates[name]
        assert {"hle", "rtm"} <= u.old.features and not {"hle", "rtm"} & u.new.features
        assert u.new.tsx == "off"
    assert "tsx_async_abort" in plan.updates["skx-01"].old.bugs
    assert "tsx_async_abort" not in plan.updates["skx-01"].new.bugs  # no TSX, no TAA


def test_adding_a_host_no_guest_cpu_can_share_is_impossible_and_explained():
    pool, specs, result = run_example(changes=["+epyc-01=EPYC-Milan-v2@skx-01"])
    assert result.status == "impossible" and result.exit_code == 1 and not result.steps
    assert {g.name for g in result.guests if g.status == "blocked"} == {"inmem-db", "web-01", "ci-04"}
    assert all("after the change, it could reach hosts of AuthenticAMD and GenuineIntel" in b for b in result.blockers)


def test_retiring_a_host_moves_its_guests_first():
    pool, specs, result = run_example(changes=["-clx-01"])
    assert result.status == "ok"
    moves = [s for s in result.steps if s.action == "move"]
    assert moves and moves[0].guests == (("inmem-db", "clx-02"),)
    assert [s.action for s in result.steps][-1] == "remove"
    replay_with_public_check(pool, specs, result, ["-clx-01"])


def test_a_guest_of_a_retired_host_with_nowhere_to_go_is_blocked():
    data = pool_dict({"a": {"cpu": "Skylake-Server-v4", "add": MC}, "b": {"cpu": "Skylake-Server-v4", "add": MC}},
                     {"edges": [], "groups": []})
    pool = load_pool(data)
    cpu = solve(pool).domains[0].guest
    spec = GuestSpec("lonely", cpu, "x", "a", None)
    result = rollout_mod.rollout(pool, [spec], ["-a"], timeout=30)
    assert result.guests[0].status == "blocked" and "nowhere" in result.guests[0].why


@pytest.mark.parametrize("change, message", [
    ("skx-9:-hle", "no host 'skx-9'"),
    ("nope-*:-hle", "matches"),
    ("skx-01:-hlee", "unknown CPU feature 'hlee'"),
    ("skx-01:kernel=5.10", "kernel '5.10' is not one of"),
    ("skx-01:colour=red", r"is not \+bit"),
    ("skx-01:", "nothing to change"),
    ("+skx-01=Skylake-Server-v4", "already in the pool"),
    ("-skx-9", "no host 'skx-9'"),
    ("garbage", r"expected HOSTS:\+bit"),
    ("skx-01:+hle" + ",+hle" * 2000, "longer than 4,096 characters"),
    ("skx-01:\x1b[31m+hle", r"\\x1b\[31m\+hle' is not"),
    ("skx-01:-linux:lahf_lm", "no host"),
])
def test_bad_changes_are_one_line_errors(change, message):
    with pytest.raises(InputError, match=message):
        plan_changes(tsx_pool(), [change])
    out = CliRunner().invoke(main, ["rollout", str(TSX / "pool.json"), "--guests", str(TSX / "guests.json"),
                                    "--change", change])
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output


def test_cli_text_and_json():
    args = ["rollout", str(TSX / "pool.json"), "--guests", str(TSX / "guests.json")]
    for c in TSX_CHANGES:
        args += ["--change", c]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "1. change these guests' CPUs at their next reboot" in out.output
    data = json.loads(CliRunner().invoke(main, [*args, "--format", "json"]).output)
    assert data["schema"] == "cpusolve-rollout/1" and data["status"] == "ok"
    assert [s["action"] for s in data["steps"]] == ["change-cpus", "update", "update"]


def test_api_rollout_takes_paths():
    result = api_rollout(str(TSX / "pool.json"), str(TSX / "guests.json"), TSX_CHANGES)
    assert result.status == "ok"


# --- independent replay ----------------------------------------------------------------


def reach_sets(pool: Pool, after: Pool, spec: GuestSpec, moved_to: str | None) -> set[str]:
    """Every host the guest may reach before, during and after (recomputed here)."""
    if spec.host is None:
        return set(spec.domain)
    before = {s: d.hosts for d in domains(pool) for s in d.starts}
    later = {s: d.hosts for d in domains(after) for s in d.starts}
    return set(before[spec.host]) | set(later.get(moved_to or spec.host, ()))


def replay_with_public_check(pool: Pool, specs, result, changes) -> None:
    """Apply the printed steps host by host; at every moment every guest (with the CPU the
    plan gives it then, parsed from the printed -cpu) passes check() on every host it may
    reach, and on a host being updated both before and after."""
    plan = plan_changes(pool, changes)
    facts = {h: x.facts for h, x in pool.hosts.items()}
    impacts = {g.name: g for g in result.guests}
    cpu = {s.name: s.cpu for s in specs if s.cpu is not None}
    reach = {s.name: reach_sets(pool, plan.after, s, impacts[s.name].moved_to) for s in specs if s.name in cpu}
    live = {n for n in cpu if not impacts[n].unsafe_today}

    def ok_everywhere(name: str) -> None:
        for h in reach[name]:
            if facts.get(h) is not None:
                assert check(cpu[name], facts[h], pool.requirements).ok, (name, h)

    for name in live:
        ok_everywhere(name)
    for step in result.steps:
        if step.action == "change-cpus":
            for (g, text), n in zip(step.guests, step.threads, strict=True):
                cpu[g] = dataclasses.replace(parse_qemu_cpu(text), threads=n)  # -cpu does not carry it
                live.add(g)
                ok_everywhere(g)
        elif step.action in ("update", "add", "remove"):
            for h in step.hosts:
                new = plan.after.hosts[h].facts if h in plan.after.hosts else None
                for name in live:
                    if h in reach[name] and new is not None:
                        assert check(cpu[name], new, pool.requirements).ok, (name, h, step)
                facts[h] = new
    for name in live:  # a guest unsafe today and untouched by the change stays as audit finds it
        ok_everywhere(name)


# --- brute force ---------------------------------------------------------------------


def feasible(kinds: frozenset, memo: dict) -> bool:
    if kinds not in memo:
        hosts = {f"k{i}": Host(f"k{i}", k) for i, k in enumerate(sorted(kinds, key=repr))}
        g = nx.DiGraph()
        g.add_nodes_from(hosts)
        sub = Pool(hosts=hosts, graph=g, groups=[tuple(hosts)] if len(hosts) > 1 else [], source="brute",
                   requirements=POOL_REQ[0])
        memo[kinds] = bool(kinds) and len({k.vendor for k in kinds}) == 1 and solve(sub, timeout=30).domains[0].solved
    return memo[kinds]


POOL_REQ: list = []


def brute_force_order_exists(pool: Pool, specs, changes) -> bool:
    """Some order of single host updates in which, at every update, every guest that may
    reach the host has some CPU safe on all it may reach then, that host as before and after."""
    plan = plan_changes(pool, changes)
    POOL_REQ[:] = [pool.requirements]
    memo: dict = {}
    reach = [reach_sets(pool, plan.after, s, None) for s in specs]
    hosts = sorted(plan.updates)
    for order in itertools.permutations(hosts):
        facts = {h: x.facts for h, x in pool.hosts.items()}
        ok = True
        for h in order:
            new = plan.updates[h].new
            for r in reach:
                if h not in r:
                    continue
                kinds = frozenset(f for f in (*(facts.get(x) for x in r), new) if f is not None)
                if not feasible(kinds, memo):
                    ok = False
                    break
            if not ok:
                break
            facts[h] = new
        if ok:
            return True
    return False


ENTRIES = {
    "skx-tsx": {"cpu": "Skylake-Server-v2", "add": MC},
    "skx": {"cpu": "Skylake-Server-v4", "add": MC},
    "clx-tsx": {"cpu": "Cascadelake-Server-v2", "add": [*MC, "tsx-ctrl", "fb-clear"], "tsx": "on"},
    "clx": {"cpu": "Cascadelake-Server-v5", "add": MC, "remove": ["hle", "rtm"]},
    "icx": {"cpu": "Icelake-Server-v7", "add": MC},
    "rome": {"cpu": "EPYC-Rome-v4", "add": ["ibpb-brtype"]},
    "milan": {"cpu": "EPYC-Milan-v2", "add": ["ibpb-brtype", "verw-clear"]},
}
EDITS = ["-hle,-rtm", "-md-clear", "+avx512f", "-avx512f", "kernel=6.12", "-ibpb-brtype", "+fb-clear", "-stibp"]


@st.composite
def rollouts(draw):
    vendor = draw(st.sampled_from(["intel", "intel", "amd"]))
    names = [k for k in ENTRIES if (k in ("rome", "milan")) == (vendor == "amd")]
    n = draw(st.integers(2, 4))
    hosts = {f"h{i}": dict(ENTRIES[draw(st.sampled_from(names))]) for i in range(n)}
    kind = draw(st.sampled_from(["group", "chain", "directed"]))
    hs = sorted(hosts)
    if kind == "group":
        mig = {"groups": [hs]}
    else:
        mig = {"edges": [list(p) for p in zip(hs, hs[1:], strict=False)], "directed": kind == "directed"}
    data = pool_dict(hosts, mig)
    pool = load_pool(data)
    # guests: each domain's own answer (safe today), or a host's own answer
    specs = []
    for i in range(draw(st.integers(1, 3))):
        host = draw(st.sampled_from(hs))
        whole = [d for d in solve(pool).domains if host in d.starts][0]
        single = solve(load_pool(pool_dict({host: hosts[host]}))).domains[0]
        cpu = (whole if whole.solved and draw(st.booleans()) else single).guest
        if cpu is None:
            continue
        specs.append(GuestSpec(f"g{i}", cpu, "x", host, None))
    changed = draw(st.lists(st.sampled_from(hs), min_size=1, max_size=min(3, n), unique=True))
    changes = [f"{h}:{draw(st.sampled_from(EDITS))}" for h in changed]
    return data, specs, changes


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(rollouts())
def test_impossible_only_when_no_order_exists_and_plans_replay(case):
    data, specs, changes = case
    pool = load_pool(data)
    if not specs:
        return
    result = rollout_mod.rollout(pool, specs, changes, timeout=30)
    exists = brute_force_order_exists(pool, specs, changes)
    assert (result.status == "ok") == exists, (result.status, result.blockers)
    if result.status == "ok":
        replay_with_public_check(pool, specs, result, changes)


def test_the_replay_rejects_a_plan_that_skips_the_cpu_change():
    """The product's own replay (and this file's) catch a plan without its CPU change."""
    pool, specs, result = run_example()
    with pytest.raises(AssertionError):
        bad = type(result)(**{**result.__dict__, "steps": result.steps[1:]})
        replay_with_public_check(pool, specs, bad, TSX_CHANGES)


def test_order_matters_retire_the_old_host_before_the_host_it_cannot_share():
    """A spare Broadwell host with pre-2018 microcode (no IBRS: its guests use retpolines,
    which protect there) cannot share a guest with a Skylake host (retbleed: a guest there
    needs IBRS): the Skylake host has to be retired before the spare joins the Broadwell
    hosts, whatever order the changes are listed in."""
    data = pool_dict({"skx-old": {"cpu": "Skylake-Server-v4", "add": MC},
                      "bdw-01": {"cpu": "Broadwell-v4", "add": MC},
                      "bdw-02": {"cpu": "Broadwell-v4", "add": MC}},
                     {"groups": [["skx-old", "bdw-01", "bdw-02"]]})
    pool = load_pool(data)
    cpu = solve(pool).domains[0].guest
    specs = [GuestSpec("app", cpu, "x", "bdw-01", None), GuestSpec("old-app", cpu, "x", "skx-old", None)]
    changes = ["+bdw-spare=Broadwell-v4,+md-clear,+flush-l1d,+ssbd,+stibp,-spec-ctrl@bdw-01", "-skx-old"]
    plan = plan_changes(pool, changes)
    POOL_REQ[:] = [pool.requirements]
    assert not feasible(frozenset({plan.updates["skx-old"].old, plan.updates["bdw-spare"].new}), {})
    assert feasible(frozenset({pool.hosts["bdw-01"].facts, plan.updates["bdw-spare"].new}), {})
    result = rollout_mod.rollout(pool, specs, changes, timeout=30)
    assert result.status == "ok", result.blockers
    actions = [(s.action, s.hosts) for s in result.steps if s.action != "change-cpus"]
    assert actions == [("move", ()), ("remove", ("skx-old",)), ("add", ("bdw-spare",))], actions
    assert brute_force_order_exists(pool, specs, changes)
    assert not brute_force_order_exists(pool, specs, changes[:1])  # the spare alone cannot join
    replay_with_public_check(pool, specs, result, changes)


def test_a_guests_file_states_the_vcpu_topology(tmp_path):
    pool = tsx_pool()
    f = tmp_path / "g.json"
    f.write_text(json.dumps([{"name": "a", "cpu": "Skylake-Server-v4", "host": "skx-01", "threads": 2},
                             {"name": "b", "cpu": "Skylake-Server-v4", "host": "skx-01"}]))
    a, b = read_guests(str(f), pool)
    assert a.cpu.threads == 2 and b.cpu.threads == 1
    f.write_text(json.dumps([{"name": "a", "cpu": "Skylake-Server-v4", "host": "skx-01", "threads": 4}]))
    with pytest.raises(InputError, match="'threads'"):
        read_guests(str(f), pool)


def test_a_search_that_runs_out_says_not_found_not_impossible(monkeypatch):
    monkeypatch.setattr(rollout_mod, "SEARCH_BUDGET", 1)
    pool, specs, result = run_example()
    assert result.status == "not-found" and result.exit_code == 1 and not result.steps
    assert all("not a proof" in b for b in result.blockers)


def test_a_libvirt_guest_gets_its_new_cpu_as_libvirt_xml(tmp_path):
    (tmp_path / "db.xml").write_text(
        "<domain type='kvm'><name>db</name><cpu mode='custom' match='exact' check='full'>"
        "<model fallback='forbid'>Skylake-Server-v2</model><feature policy='require' name='md-clear'/>"
        "<feature policy='require' name='ssbd'/><feature policy='require' name='stibp'/>"
        "<feature policy='require' name='arch-capabilities'/></cpu></domain>")
    (tmp_path / "guests.json").write_text(json.dumps([{"name": "db", "libvirt": "db.xml", "host": "skx-01"}]))
    pool, specs, result = run_example(guests=tmp_path / "guests.json")
    (db,) = result.guests
    assert db.status == "cpu-change" and len(db.new_libvirt) == 1
    xml = db.new_libvirt[0]
    assert xml.startswith("<cpu ") and "Skylake-Server-v2" in xml
    assert 'policy="disable" name="hle"' in xml and 'policy="disable" name="rtm"' in xml
    replay_with_public_check(pool, specs, result, TSX_CHANGES)


def test_a_change_no_order_survives_names_the_state_after_it():
    data = pool_dict({"skx-old": {"cpu": "Skylake-Server-v4", "add": MC},
                      "bdw-01": {"cpu": "Broadwell-v4", "add": MC}}, {"groups": [["skx-old", "bdw-01"]]})
    pool = load_pool(data)
    specs = [GuestSpec("app", solve(pool).domains[0].guest, "x", "bdw-01", None)]
    result = rollout_mod.rollout(pool, specs, ["bdw-01:-spec-ctrl"], timeout=30)
    assert result.status == "impossible" and not brute_force_order_exists(pool, specs, ["bdw-01:-spec-ctrl"])
    (why,) = result.blockers
    assert why.startswith("app: after the change, ") and "skx-old" in why


def test_an_impossible_rollout_still_reports_every_guest():
    """The guests of other domains are reported too (unaffected, or without a plan)."""
    data = pool_dict({"a": {"cpu": "Skylake-Server-v4", "add": MC}, "b": {"cpu": "Skylake-Server-v4", "add": MC},
                      "c": {"cpu": "Broadwell-v4", "add": MC}}, {"edges": [["a", "b"]]})
    pool = load_pool(data)
    answers = {s: d.guest for d in solve(pool).domains for s in d.starts}
    specs = [GuestSpec("ga", answers["a"], "x", "a", None), GuestSpec("gc", answers["c"], "x", "c", None)]
    result = rollout_mod.rollout(pool, specs, ["+e=EPYC-Milan-v2@a"], timeout=30)
    assert result.status == "impossible"
    assert [(g.name, g.status) for g in result.guests] == [("ga", "blocked"), ("gc", "unaffected")]
    result = rollout_mod.rollout(pool, specs, ["+e=EPYC-Milan-v2@a", "c:kernel=6.12"], timeout=30)
    assert {g.name: g.status for g in result.guests}["gc"] == "not-planned"
    assert "guests:" in render_rollout(result, "text")
