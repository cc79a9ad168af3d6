"""Explain and plan: blockers, what-if, suggestions, the library API a scheduler calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cpusolve
from cpusolve import Planner, check, load_pool, solve, targets
from cpusolve.cli import main
from cpusolve.errors import InputError

from .conftest import pool_dict

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
UCODE = ["md-clear", "flush-l1d", "ssbd", "stibp"]


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_blockers_name_better_models_and_the_hosts_lacking():
    d = solve(str(EXAMPLES / "intel-rack.json")).domains[0]
    nxt = d.better[0]
    assert nxt.model == "Skylake-Server-v5"
    assert [(m.feature, [h.name for h in m.lacking]) for m in nxt.missing] == [("xsaves", ["skx-r1"])]
    clx = next(b for b in d.better if b.model.startswith("Cascadelake"))
    vnni = next(m for m in clx.missing if m.feature == "avx512vnni")
    assert [(h.name, h.count) for h in vnni.lacking] == [("skx-r1", 40)]


def test_safety_costs_name_host_and_bug():
    d = solve(str(EXAMPLES / "westmere-false-immunity.json")).domains[0]
    # Westmere's own 6/44/1 would make the guest skip IBRS: retbleed unprotected on Skylake-SP.
    # (MMIO is not a cost: the MDS bug bit makes the guest VERW anyway, which clears the fill
    # buffers on MDS-affected silicon with MD_CLEAR microcode.)
    fms = [c for c in d.safety_costs if c.kind == "fms"]
    assert {c.bug for c in fms} == {"retbleed"}
    assert all([h.name for h in c.hosts] == ["skx-01"] for c in fms)
    data = json.loads(cli(EXAMPLES / "westmere-false-immunity.json", "--format", "json")[1])
    assert {c["bug"] for c in data["domains"][0]["safety_costs"]} == {"retbleed"}


def test_withheld_immunity_bit_is_a_safety_cost():
    # Both hosts' KVM can say rdctl-no, but one host's facts say it has Meltdown: a guest shown
    # rdctl-no would not run PTI there, so rdctl-no is withheld.
    hosts = {"a": {"cpu": "Icelake-Server-v7", "add": UCODE},
             "b": {"cpu": "Icelake-Server-v7", "add": UCODE, "bugs": ["meltdown"]}}
    d = solve(pool_dict(hosts)).domains[0]
    assert d.status == "ok" and "rdctl-no" not in d.features
    cost = next(c for c in d.safety_costs if c.feature == "rdctl-no")
    assert cost.kind == "withheld" and cost.bug == "meltdown" and [h.name for h in cost.hosts] == ["b"]
    assert any(p.bug == "meltdown" and p.does == "pti" and [h.name for h in p.hosts] == ["b"] for p in d.protection)


def test_what_if_without_the_old_host():
    code, out, _ = cli(EXAMPLES / "one-old-host.json", "--without", "bdw-legacy")
    assert code == 0
    assert "VMs on clx-01, clx-02: Broadwell-v4 -> Cascadelake-Server-v5; gains avx512bw" in out
    code, out, _ = cli(EXAMPLES / "one-old-host.json", "--without", "bdw-legcy")
    assert code == 2 and out == ""


def test_what_if_upgrade_and_add():
    code, out, _ = cli(EXAMPLES / "intel-rack.json", "--add",
                       "skx-r1=Cascadelake-Server-v5,+md-clear,+flush-l1d,+ssbd,+stibp,-hle,-rtm",
                       "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["domains"][0]["guest"]["model"] == "Cascadelake-Server-v5"
    change = data["whatif"]["changes"][0]
    assert change["before"] == "Skylake-Server-v4" and "avx512vnni" in change["gained"]
    pool = load_pool(str(EXAMPLES / "intel-rack.json"))
    from cpusolve.planning.whatif import add

    grown = add(pool, "icx-09=Icelake-Server-v7,+md-clearx8@clx-r2")
    assert grown.hosts["icx-09"].count == 8 and grown.graph.has_edge("icx-09", "clx-r2")
    with pytest.raises(InputError, match="NAME=MODEL"):
        add(pool, "nonsense")


def test_suggest_ranks_the_old_host_first():
    code, out, _ = cli(EXAMPLES / "one-old-host.json", "--suggest", "2", "--format", "json")
    sugg = json.loads(out)["suggestions"]
    assert sugg[0]["hosts"] == ["bdw-legacy"] and sugg[0]["model_after"] == "Cascadelake-Server-v5"
    assert sugg[0]["gain"] == len(sugg[0]["gained"]) * 60
    assert all(a["gain"] >= b["gain"] for a, b in zip(sugg, sugg[1:], strict=False))


def test_check_and_targets():
    skx = {"cpu": "Skylake-Server-v4", "add": UCODE}
    v = check("Skylake-Server-v4,+md-clear,+ssbd,+stibp", skx)
    assert v.ok and v.to_dict()["ok"] is True
    # Debian 12's KVM (6.1, the default host kernel) never offers flush-l1d; 6.12's does
    v = check("Skylake-Server-v4,+md-clear,+flush-l1d,+ssbd,+stibp", skx)
    assert not v.ok and v.missing == ("host cannot expose flush-l1d",)
    assert check("Skylake-Server-v4,+md-clear,+flush-l1d,+ssbd,+stibp", {**skx, "kernel": "6.12"}).ok
    v = check("Cascadelake-Server-v5", skx)
    assert not v.ok and any("avx512vnni" in m for m in v.missing)
    v = check("Westmere-v2,+md-clear,+ssbd,+stibp", skx)
    assert not v.ok and not v.missing and any("retbleed" in u for u in v.unsafe)
    cpu = "Skylake-Server-v4,+arch-capabilities,+md-clear,+ssbd,+stibp"
    assert targets(cpu, str(EXAMPLES / "intel-rack.json")) == ["clx-r1", "clx-r2", "icx-r2", "skx-r1"]
    assert targets("Icelake-Server-v7", str(EXAMPLES / "intel-rack.json")) == []


def test_planner_resolves_only_what_changed():
    hosts = {"a": {"cpu": "Skylake-Server-v4", "add": UCODE}, "b": {"cpu": "Cascadelake-Server-v5", "add": UCODE},
             "c": {"cpu": "Icelake-Server-v7", "add": UCODE}}
    planner = Planner(load_pool(pool_dict(hosts, {"edges": [["a", "b"]]})))
    stats = planner._cache.stats
    planner.solve()
    assert stats["optimized"] == 2
    planner.add_host("a2", {"cpu": "Skylake-Server-v4", "add": UCODE}, peers=["a"])
    assert planner.domain_of("a2").guest.model.startswith("Skylake-Server")
    assert stats["optimized"] == 2  # same host kinds: no new solve
    planner.add_host("c2", {"cpu": "Cascadelake-Server-v5", "add": UCODE}, peers=["c"])
    assert planner.domain_of("c").guest.model == "Cascadelake-Server-v5"
    assert stats["optimized"] == 3  # only the changed domain
    planner.remove_host("c2")
    assert planner.domain_of("c").guest.model == "Icelake-Server-v7"
    assert stats["optimized"] == 3  # back to a cached domain
    with pytest.raises(InputError):
        planner.remove_host("zz")


def test_planner_cache_stays_bounded_and_results_are_frozen():
    """A long-lived Planner forgets what its recent pools no longer need (one eviction
    policy for every kind of entry), and what it hands out cannot be changed behind its back."""
    import dataclasses

    hosts = {"a": {"cpu": "Skylake-Server-v4", "add": UCODE}, "b": {"cpu": "Cascadelake-Server-v5", "add": UCODE}}
    planner = Planner(load_pool(pool_dict(hosts, {"edges": [["a", "b"]]})))
    planner.solve()
    base = planner._cache.size()
    models = ["Icelake-Server-v7", "SapphireRapids-v3", "Cooperlake-v2", "Haswell-v4", "Broadwell-v4",
              "Skylake-Server-v5", "Cascadelake-Server-v4", "Icelake-Server-v6"]
    for i, model in enumerate(models):
        planner.add_host(f"n{i}", {"cpu": model, "add": UCODE}, peers=["a"])
        planner.solve()
        planner.remove_host(f"n{i}")
        planner.solve()
    assert planner._cache.size() <= 4 * base  # not one set of entries per model tried
    d = planner.domain_of("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.status = "infeasible"
    with pytest.raises(TypeError):
        d.guest_bugs["6.1"] = ()
    assert planner.solve().domains[0].status == "ok"


def test_public_api_names_and_to_dict_matches_json():
    for name in cpusolve.__all__:
        assert getattr(cpusolve, name) is not None
    result = solve(str(EXAMPLES / "intel-rack.json"))
    from cpusolve.writers import render

    assert json.loads(render(result, "json", 1)) == json.loads(json.dumps(result.to_dict()))


def test_nova_and_dot_outputs():
    import configparser
    import tempfile

    code, out, err = cli(EXAMPLES / "intel-rack.json", "--format", "nova")
    assert code == 2 and "4 compute hosts need one nova.conf fragment each; give -o DIR" in err
    with tempfile.TemporaryDirectory() as tmp:
        code, out, _ = cli(EXAMPLES / "intel-rack.json", "--format", "nova", "-o", tmp)
        assert code == 0
        files = sorted(Path(tmp).glob("*.conf"))
        assert [f.stem for f in files] == ["clx-r1", "clx-r2", "icx-r2", "skx-r1"]
        for f in files:
            conf = configparser.ConfigParser()
            conf.read(f)  # one [libvirt] section: no DuplicateSectionError
            assert conf["libvirt"]["cpu_mode"] == "custom" and conf["libvirt"]["cpu_models"] == "Skylake-Server-v4"
            assert "+md-clear" in conf["libvirt"]["cpu_model_extra_flags"]
        code, out, _ = cli(EXAMPLES / "westmere-false-immunity.json", "--format", "nova", "-o", tmp + "/w")
        assert code == 1  # Nova cannot set the family/model/stepping the answer needs
        text = (Path(tmp) / "w" / "skx-01.conf").read_text()
        assert "NOT CONFIGURED: guests must see family 6 model 85 stepping 4" in text and "[libvirt]" not in text
    code, out, _ = cli(EXAMPLES / "epyc-evacuation.json", "--format", "dot")
    assert out.startswith("digraph cpusolve {") and '"rome-01" -> "milan-01";' in out
    assert 'label="domain 1: EPYC-Milan-v' in out
    import shutil

    if shutil.which("dot"):
        proc = subprocess.run(["dot", "-Tsvg"], input=out, capture_output=True, text=True)
        assert proc.returncode == 0 and "<svg" in proc.stdout


def test_scheduler_example_runs_on_the_public_api():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "scheduler.py"), str(EXAMPLES / "intel-rack.json")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "new VM on clx-r1: -cpu Skylake-Server-v4," in proc.stdout
    assert "running VM may go to: clx-r1, clx-r2, icx-new, icx-r2, skx-r1" in proc.stdout
    source = (EXAMPLES / "scheduler.py").read_text()
    assert "from cpusolve import" in source and "cpusolve." not in source.replace("from cpusolve import", "")


def test_a_group_stays_a_group_without_one_member():
    """Groups are kept as member lists (not n(n-1) edges); taking a member out, with
    --without or the Planner, leaves the others migrating among themselves, while an
    explicit path through the removed host is cut."""
    from cpusolve.domains.graph import domains
    from cpusolve.planning.whatif import without

    hosts = {n: {"cpu": "Skylake-Server-v4"} for n in ("a", "b", "c", "x", "y", "z")}
    pool = load_pool({"hosts": hosts, "migration": {"directed": True, "groups": [["a", "b", "c"]],
                                                    "edges": [["x", "y"], ["y", "z"]]}})
    assert pool.graph.number_of_edges() == 2 and pool.groups == [("a", "b", "c")]
    doms = {d.starts: d.hosts for d in domains(pool)}
    assert doms[("a", "b", "c")] == ("a", "b", "c") and doms[("x",)] == ("x", "y", "z")
    after = {d.starts: d.hosts for d in domains(without(pool, ["b", "y"]))}
    assert after[("a", "c")] == ("a", "c")
    assert after[("x",)] == ("x",) and after[("z",)] == ("z",)
    planner = Planner(pool)
    planner.remove_host("a")
    assert {d.starts: d.hosts for d in domains(planner.pool)}[("b", "c")] == ("b", "c")


def test_planner_reports_equal_a_fresh_solve_after_changes():
    """A kept cache also keeps whole domain reports; after changes (a host replaced by
    another CPU under the same name, a count change, a group member removed) the
    Planner's report must equal solving the changed pool from scratch."""
    from cpusolve.writers import render

    hosts = {"a": {"cpu": "Skylake-Server-v4", "add": UCODE}, "b": {"cpu": "Cascadelake-Server-v5", "add": UCODE},
             "c": {"cpu": "Icelake-Server-v7", "add": UCODE}, "d": {"cpu": "Icelake-Server-v7", "add": UCODE},
             "e": {"cpu": "Haswell-v4", "add": UCODE}}
    planner = Planner(load_pool(pool_dict(hosts, {"groups": [["a", "b"], ["c", "d", "e"]]})))
    planner.solve()
    stats = planner._cache.stats
    steps = [lambda: planner.add_host("b", {"cpu": "Icelake-Server-v7", "add": UCODE}),
             lambda: planner.add_host("a", {"cpu": "Skylake-Server-v4", "add": UCODE, "count": 5}),
             lambda: planner.remove_host("e")]
    for step in steps:
        before = stats["reports"]
        step()
        result = planner.solve()
        assert stats["reports"] == before + 1  # only the domain that changed is rebuilt
        assert render(result, "json") == render(solve(planner.pool), "json")
