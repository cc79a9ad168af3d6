"""The optimizer on hand-checked pools, and the checker that guards every answer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cpusolve.api import load_pool, solve
from cpusolve.core.guest import GuestCpu, qemu_cpu_arg
from cpusolve.core.pool import Requirements
from cpusolve.domains.graph import domains
from cpusolve.verify.checker import check_answer
from cpusolve.verify.checker import problems as problems_of

from .conftest import pool_dict

MICROCODE = ["md-clear", "ssbd", "stibp", "flush-l1d"]  # what 2018-2019 microcode gives Intel hosts


def only(result):
    assert len(result.domains) == 1
    return result.domains[0]


def test_skylake_plus_cascadelake_gives_a_skylake_model():
    d = only(solve(pool_dict({"skx": {"cpu": "Skylake-Server-v4", "add": MICROCODE},
                              "clx": {"cpu": "Cascadelake-Server-v5", "add": MICROCODE}})))
    assert d.status == "ok"
    assert d.guest.model.startswith("Skylake-Server-v")
    # Cascade Lake's AVX-512 VNNI is not on Skylake, so the guest cannot have it.
    assert "avx512vnni" not in d.features
    assert {"avx512f", "md-clear", "ssbd", "spec-ctrl"} <= d.features
    # Skylake silicon has MDS: no guest may be told mds-no.
    assert "mds-no" not in d.features
    assert "+md-clear" in d.mitigations
    assert "mds" in d.guest_bugs["6.1"] and "mds" in d.guest_bugs["6.12"]


def test_single_host_type_gets_its_own_model_exactly():
    d = only(solve(pool_dict({"clx": {"cpu": "Cascadelake-Server-v5", "add": [*MICROCODE, "fb-clear"]}})))
    assert d.status == "ok"
    assert d.guest.model == "Cascadelake-Server-v5"
    assert d.guest.minus == ()


def test_mds_no_shown_where_verw_would_protect_nothing():
    # Cascade Lake is MDS_NO, and with TSX off (its TSX_CTRL microcode, Debian's default) its
    # MMIO stale data needs no VERW on exit to user (processor_mmio_stale_data.rst: only an
    # attacker with MMIO access).  Hiding mds-no to make the guest VERW, as the truthfulness
    # rule did, protects nothing: the guest gets its model as is.
    d = only(solve(pool_dict({"clx": {"cpu": "Cascadelake-Server-v5", "add": MICROCODE}})))
    assert d.status == "ok" and d.guest.minus == () and "mds-no" in d.features
    mmio = next(p for p in d.protection if p.bug == "mmio_stale_data")
    assert mmio.status == "protected" and "MDS_NO" in mmio.why


def test_compat_policy_attempts_where_microcode_is_missing():
    pool = pool_dict({"skx": {"cpu": "Skylake-Server-v4", "add": ["ssbd", "stibp"]},
                      "clx": {"cpu": "Cascadelake-Server-v5", "add": ["ssbd", "stibp"]}})
    strict = only(solve(pool))
    assert strict.status == "infeasible"
    assert any(c.bug == "mds" and "skx lacks md-clear (host microcode)" in c.text for c in strict.conflicts)
    compat = only(solve(pool, policy="compat"))
    assert compat.status == "ok" and compat.guest.model.startswith("Skylake-Server")
    assert "mds" in compat.guest_bugs["6.12"]  # the guest runs VERW: the right kind of mitigation
    ineffective = {p.bug: [h.name for h in p.hosts] for p in compat.protection if p.status == "ineffective"}
    assert ineffective["mds"] == ["skx"]


def test_strict_infeasible_names_host_bug_and_microcode():
    d = only(solve(pool_dict({"skx": {"cpu": "Skylake-Server-v4", "count": 40, "add": MICROCODE},
                              "skx-07": {"cpu": "Skylake-Server-v4", "add": ["ssbd", "stibp", "flush-l1d"]}})))
    assert d.status == "infeasible"
    mds = next(c for c in d.conflicts if c.bug == "mds")
    assert mds.kind == "unprotected" and [h.name for h in mds.hosts] == ["skx-07"]
    assert "skx-07 lacks md-clear (host microcode)" in mds.text
    assert "split" in mds.fix and "waive mds" in mds.fix


def test_required_feature_missing_names_the_hosts():
    d = only(solve(pool_dict({"skx": {"cpu": "Skylake-Server-v4", "add": MICROCODE, "count": 4},
                              "clx": {"cpu": "Cascadelake-Server-v5", "add": MICROCODE}},
                             require=["avx512vnni"])))
    assert d.status == "infeasible"
    kinds = {c.kind for c in d.conflicts}
    assert kinds == {"require", "lacks"}
    lack = next(c for c in d.conflicts if c.kind == "lacks")
    assert lack.feature == "avx512vnni" and [h.name for h in lack.hosts] == ["skx"]


def test_forbid_and_min_model_are_hard():
    pool = pool_dict({"clx": {"cpu": "Cascadelake-Server-v5", "add": MICROCODE}},
                     forbid=["avx512f"], min_model="Haswell-v4")
    d = only(solve(pool))
    assert d.status == "ok"
    assert not {"avx512f", "avx512bw", "avx512vl"} & d.features
    assert {"avx2", "fma", "bmi2"} <= d.features
    d = only(solve(pool_dict({"old": {"cpu": "Westmere-v2", "add": MICROCODE}}, min_model="Haswell-v4")))
    assert d.status == "infeasible" and any(c.kind == "min_model" for c in d.conflicts)


def test_mixed_vendor_domain_is_infeasible_with_hosts_by_vendor():
    d = only(solve(pool_dict({"skx": {"cpu": "Skylake-Server-v4"}, "rome": {"cpu": "EPYC-Rome-v4"}})))
    assert d.status == "infeasible"
    assert "GenuineIntel: skx" in d.conflicts[0].text and "AuthenticAMD: rome" in d.conflicts[0].text


def test_old_model_shows_affected_fms_on_skylake_hosts():
    # Westmere's f/m/s tells Linux it has no Retbleed; Skylake hosts do.  The answer must
    # either give rsba (impossible: no host's KVM can set it) or show a Skylake f/m/s.
    d = only(solve(pool_dict({"wsm": {"cpu": "Westmere-v2", "add": MICROCODE},
                              "skx": {"cpu": "Skylake-Server-v4", "add": MICROCODE}})))
    assert d.status == "ok"
    assert d.guest.model.startswith("Westmere")
    assert d.guest.fms is not None
    assert "retbleed" in d.guest_bugs["6.1"]
    assert ",family=6,model=" in qemu_cpu_arg(d.guest)


def test_equal_domains_are_solved_once():
    hosts = {f"h{i}": {"cpu": "Skylake-Server-v4" if i % 2 else "Cascadelake-Server-v5", "add": MICROCODE}
             for i in range(40)}
    groups = [[f"h{i}", f"h{i + 1}"] for i in range(0, 40, 2)]
    from cpusolve.engine.cache import SolveCache

    cache = SolveCache()
    result = solve(pool_dict(hosts, {"groups": groups}), cache=cache)
    assert len(result.domains) == 20
    assert len({d.guest for d in result.domains}) == 1
    assert cache.stats["optimized"] == 1  # 20 domains of the same two host kinds: one problem
    assert cache.stats["checked"] == 1
    assert sum(d.solve_ms > 0 for d in result.domains) == 20  # cached outcome carries its time


def test_deterministic_output():
    from cpusolve.writers import render

    pool = pool_dict({"skx": {"cpu": "Skylake-Server-v4", "add": MICROCODE},
                      "clx": {"cpu": "Cascadelake-Server-v5", "add": MICROCODE}})
    first = render(solve(pool), "json")
    assert all(render(solve(pool), "json") == first for _ in range(3))


def test_checker_rejects_planted_wrong_answers():
    pool = load_pool(pool_dict({"skx": {"cpu": "Skylake-Server-v4", "add": MICROCODE},
                                "clx": {"cpu": "Cascadelake-Server-v5", "add": MICROCODE}}))
    dom = domains(pool)[0]
    from cpusolve.encodings.catalog import catalog

    cat, req = catalog(), pool.requirements
    good = only(solve(pool)).guest
    assert check_answer(cat, dom.types, req, good) == []
    # Too much: Cascade Lake's model needs avx512vnni, which the Skylake host lacks.
    bad = GuestCpu("Cascadelake-Server-v5", plus=("md-clear", "ssbd", "stibp"))
    assert any("cannot expose avx512vnni" in p for p in check_answer(cat, dom.types, req, bad))
    # A lie about security: claiming mds-no while the Skylake host has MDS (the host cannot
    # say it, and a guest that believed it would skip VERW there).
    lie = dataclasses.replace(good, plus=tuple(sorted({*good.plus, "mds-no", "arch-capabilities"})))
    problems = check_answer(cat, dom.types, req, lie)
    found = problems_of(cat, dom.types, req, lie)
    assert any(p.kind == "missing" and p.feature == "mds-no" for p in found), problems
    assert any(p.kind == "unprotected" and p.bug == "mds" and "believes itself not affected" in p.why
               for p in found), problems
    # md-clear in the guest only changes what its sysfs says: VERW runs anyway once the MDS
    # bug bit is set, and the host's microcode makes it clear the buffers.
    hidden = dataclasses.replace(good, plus=tuple(f for f in good.plus if f != "md-clear"))
    assert check_answer(cat, dom.types, req, hidden) == []
    # Dependency broken: avx512f without avx2.
    broken = dataclasses.replace(good, minus=tuple(sorted({*good.minus, "avx2"})))
    assert any("avx512f needs avx2" in p for p in check_answer(cat, dom.types, req, broken))


def test_requirements_override_via_api():
    pool = load_pool(pool_dict({"clx": {"cpu": "Cascadelake-Server-v5", "add": MICROCODE}}))
    d = only(solve(pool, requirements=Requirements(forbid=frozenset({"avx512f"}))))
    assert "avx512f" not in d.features


@pytest.mark.parametrize("example", ["intel-rack", "epyc-evacuation", "one-old-host",
                                     "westmere-false-immunity", "mixed-inline"])
def test_examples_solve_and_pass_the_checker(example):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{example}.json"
    result = solve(str(path))  # solve() raises InternalError if the checker disagrees
    assert result.domains
    for d in result.domains:
        assert d.status in ("ok", "ok-waived", "infeasible")
        assert (d.guest is not None) == d.solved


def test_parallel_solve_gives_the_same_report():
    from cpusolve.writers import render

    hosts = {f"h{i}": {"cpu": m, "add": MICROCODE}
             for i, m in enumerate(["Skylake-Server-v4", "Cascadelake-Server-v5", "Icelake-Server-v7",
                                    "Broadwell-v4", "Haswell-v4", "SapphireRapids-v2"] * 2)}
    groups = [["h0", "h1"], ["h2", "h3"], ["h4", "h5"], ["h6", "h8"], ["h7", "h9", "h10"], ["h11"]]
    pool = pool_dict(hosts, {"groups": groups})
    one = render(solve(pool), "json")
    assert render(solve(pool, jobs=2), "json") == one


def test_answer_does_not_depend_on_what_the_process_solved_before():
    """Domains share one Z3 context per process, whose history steers Z3's search; the
    optimum is made unique (objectives' last tie-breaks), so a fresh process and one that
    solved other pools first print the same report."""
    import subprocess
    import sys

    from cpusolve.writers import render

    root = Path(__file__).resolve().parents[1]
    examples = sorted((root / "examples").glob("*.json")) + [root / "examples" / "fleet" / "pool.json"]
    for ex in reversed(examples):
        solve(str(ex))
    for ex in examples:
        fresh = subprocess.run([sys.executable, "-m", "cpusolve.cli", str(ex), "--format", "json"],
                               capture_output=True, text=True, cwd=root)
        assert fresh.returncode in (0, 1), fresh.stderr
        assert render(solve(str(ex)), "json").rstrip("\n") == fresh.stdout.rstrip("\n"), ex.name


def test_soft_objectives_are_lexicographic_in_the_order_added():
    """A problem's objectives are soft-formula groups; the backend must let the first win
    outright even when a later one weighs more (a weighted sum would pick y here)."""
    from cpusolve.backend import solve as backend
    from cpusolve.core.pool import Requirements
    from cpusolve.encodings.catalog import catalog
    from cpusolve.encodings.expr import Feature, Not
    from cpusolve.problem.build import Problem
    from cpusolve.problem.formula import ExactlyOne, Implies, fms_sel

    x, y = Feature("lex_x"), Feature("lex_y")
    for order, expect in (((("first", x, 1), ("second", y, 10))), {"lex_x"}), \
                         ((("first", y, 10), ("second", x, 1)), {"lex_y"}):
        p = Problem(cat=catalog(), vendor="GenuineIntel", types=(), req=Requirements(), universe=["lex_x", "lex_y"],
                    models=[], identities=[(6, 1, 1)])
        p.must(Implies(x, Not(y)))
        p.must(ExactlyOne((fms_sel((6, 1, 1)),)))
        p.objectives = [(name, [(lit, weight)]) for name, lit, weight in order]
        answer = backend.optimum(p, 10)
        assert answer.status == "sat" and answer.choice.features == expect


def test_audit_repairs_do_not_depend_on_what_the_process_solved_before():
    """``nearest()`` (the audit's smallest change) also runs in the shared Z3 context."""
    import subprocess
    import sys

    from cpusolve.api import load_pool
    from cpusolve.inputs.guests_file import read_guests
    from cpusolve.planning.audit import audit
    from cpusolve.writers.audit import render_audit

    root = Path(__file__).resolve().parents[1]
    fleet = root / "examples" / "fleet"
    for ex in sorted((root / "examples").glob("*.json")):
        solve(str(ex))
    pool = load_pool(str(fleet / "pool.json"))
    here = render_audit(audit(pool, read_guests(str(fleet / "guests.json"), pool)), "json")
    fresh = subprocess.run([sys.executable, "-m", "cpusolve.cli", "audit", str(fleet / "pool.json"),
                            "--guests", str(fleet / "guests.json"), "--format", "json"],
                           capture_output=True, text=True, cwd=root)
    assert fresh.returncode in (0, 1), fresh.stderr
    assert here.rstrip("\n") == fresh.stdout.rstrip("\n")


def test_an_answer_the_checker_rejects_is_never_printed(monkeypatch, tmp_path):
    """Exit 3 and no output when the optimizer's answer fails the independent checker: a
    backend that claims mds-no on Skylake hosts (a lie) must not reach stdout or -o."""
    import json

    from click.testing import CliRunner

    from cpusolve.backend import solve as z3_backend
    from cpusolve.cli import main
    from cpusolve.engine import optimize

    real = z3_backend.optimum
    real_ideal = optimize.ideal_optimum

    def lie(answer):
        if answer is None or answer.status != "sat":
            return answer
        choice = dataclasses.replace(answer.choice, features=answer.choice.features | {"mds-no", "arch-capabilities"})
        return dataclasses.replace(answer, choice=choice)

    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool_dict({"skx": {"cpu": "Skylake-Server-v4", "add": MICROCODE}})))
    out = tmp_path / "answer.txt"
    # the lie from Z3 (the ideal-guest shortcut off), and from the shortcut itself
    for source in ("z3", "ideal"):
        if source == "z3":
            monkeypatch.setattr(optimize, "ideal_optimum", lambda problem: None)
            monkeypatch.setattr(z3_backend, "optimum", lambda problem, timeout: lie(real(problem, timeout)))
        else:
            monkeypatch.setattr(optimize, "ideal_optimum", lambda problem: lie(real_ideal(problem)))
            monkeypatch.setattr(z3_backend, "optimum", real)
        for args in ([str(path)], [str(path), "--format", "qemu"], [str(path), "-o", str(out)]):
            run = CliRunner().invoke(main, args)
            assert run.exit_code == 3, (source, run.output)
            assert run.stdout == ""
            assert "checker rejected the answer" in run.stderr and "mds" in run.stderr
            assert len(run.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_host_facts_hash_is_the_hash_of_what_equality_compares():
    """HostFacts remembers its hash (host kinds key every memo of a solve): it must cover
    exactly the fields equality compares, and not travel in a pickle (string hashes are
    salted per process)."""
    import dataclasses
    import pickle

    from cpusolve.core.hosts import HostFacts

    base = HostFacts("GenuineIntel", 6, 85, 7, frozenset({"sse2"}), bugs=frozenset({"mds"}), origin="a")
    compared = [f.name for f in dataclasses.fields(HostFacts) if f.compare]
    assert hash(base) == hash(tuple(getattr(base, f) for f in compared))
    assert hash(dataclasses.replace(base, origin="b")) == hash(base)
    changed = {"vendor": "AuthenticAMD", "family": 25, "model": 1, "stepping": 1, "features": frozenset(),
               "bugs": frozenset(), "silicon": frozenset({"md-clear"}), "internal_bugs": frozenset({"BHI"}),
               "kernel": "6.12", "tsx": "on", "smt": False, "microcode_fixes": frozenset({"its_ibpb"}),
               "qemu": "7.2", "libvirt": "9.0"}
    assert set(changed) == set(compared)
    for name, value in changed.items():
        other = dataclasses.replace(base, **{name: value})
        assert other != base and hash(other) != hash(base), name
    assert "_hash" not in pickle.loads(pickle.dumps(base)).__dict__


def test_host_kinds_that_tie_on_what_a_guest_sees_still_have_one_order():
    """type_order reads every field equality compares: two kinds that show the same
    identity, features and bugs but differ in kernel, SMT, TSX, silicon or microcode (a
    fleet mid-rollout) once tied, and their order in a domain (so which host an
    explanation names) followed the set they were gathered in: a policy strict run of the
    diverse benchmark pool named other hosts from one run to the next."""
    import dataclasses

    from cpusolve.core.hosts import HostFacts
    from cpusolve.domains.kinds import type_order

    base = HostFacts("AuthenticAMD", 23, 49, 0, frozenset({"sse2"}), bugs=frozenset({"retbleed"}))
    changed = {"silicon": frozenset({"ibpb"}), "internal_bugs": frozenset({"SRSO"}), "kernel": "6.12",
               "tsx": "on", "smt": False, "microcode_fixes": frozenset({"its_ibpb"}), "qemu": "7.2",
               "libvirt": "9.0"}
    kinds = [base] + [dataclasses.replace(base, **{k: v}) for k, v in changed.items()]
    import itertools

    keys = [type_order(k) for k in kinds] + [type_order(dataclasses.replace(base, qemu=""))]
    assert all(a != b for a, b in itertools.combinations(keys, 2))
    orders = {tuple(sorted(perm, key=type_order)) for perm in (kinds, kinds[::-1], kinds[3:] + kinds[:3])}
    assert len(orders) == 1
