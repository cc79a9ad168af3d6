"""Domains solved elsewhere give the report one process gives, byte for byte: forked
workers (-j), any concurrent.futures executor, and a dask.distributed LocalCluster; and the
fleet summary groups domains by what they share."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cpusolve.api import load_pool, solve
from cpusolve.writers import render
from cpusolve.writers.summary import render_summary

from .benchdata import genpool

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def diverse():
    return genpool().generate_diverse(n_hosts=300, n_domains=60, seed=5)


@pytest.fixture(scope="module")
def one_process(diverse):
    return render(solve(load_pool(diverse)), "json")


def test_forked_workers_give_the_same_report(diverse, one_process):
    result = solve(load_pool(diverse), jobs=2)
    assert render(result, "json") == one_process
    statuses = {d.status for d in result.domains}
    assert {"ok", "infeasible"} <= statuses  # both paths ran in the workers


def test_any_executor_gives_the_same_report(diverse, one_process):
    with ThreadPoolExecutor(max_workers=1) as ex:  # a stand-in: chunks solved out of order
        result = solve(load_pool(diverse), executor=ex, jobs=3)
    assert render(result, "json") == one_process


def test_dask_local_cluster_gives_the_same_report(diverse, tmp_path):
    pytest.importorskip("distributed", reason="the 'dask' extra is not installed")
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(diverse))
    cmd = [sys.executable, "-m", "cpusolve.cli", str(path), "--format", "json"]
    here = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = subprocess.run(cmd + ["--executor", "dask:local", "-j", "2"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == here.returncode == 1, out.stderr  # some domains are infeasible
    assert out.stdout == here.stdout


def test_bad_executor_is_one_line(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"hosts": {"a": {"cpu": "Skylake-Server-v4"}}}))
    out = subprocess.run([sys.executable, "-m", "cpusolve.cli", str(path), "--executor", "spark:x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "dask:ADDRESS" in out.stderr, out.stderr
    with pytest.raises(Exception, match="executor must be"):
        solve(load_pool(json.loads(path.read_text())), executor=object())


def test_summary_groups_domains_by_outcome(diverse):
    result = solve(load_pool(diverse))
    text = render_summary(result)
    kinds = [ln for ln in text.splitlines() if ln.startswith("Kind ")]
    # every domain is in exactly one kind, and kinds with the same answer are one
    counted = sum(int(ln.split(": ", 1)[1].split(" domain")[0]) for ln in kinds)
    assert counted == len(result.domains)
    answers = [ln.split("-cpu ", 1)[1] for ln in kinds if "-cpu " in ln]
    assert len(answers) == len(set(answers))
    assert len(kinds) < len(result.domains)
    assert any("INFEASIBLE" in ln for ln in kinds) and any(ln.count("OK (") for ln in kinds)
    first = text.splitlines()[0]
    assert first.startswith(f"{len(result.domains)} domains, ")


def test_summary_and_executor_refuse_what_they_cannot_show(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"hosts": {"a": {"cpu": "Skylake-Server-v4"}, "b": {"cpu": "Cascadelake-Server-v5"}},
                                "migration": {"groups": [["a", "b"]]}}))
    for extra, word in ((["--summary", "--without", "a"], "--summary"), (["--summary", "--format", "json"], "text"),
                        (["--executor", "dask:local", "--without", "a"], "--executor")):
        out = subprocess.run([sys.executable, "-m", "cpusolve.cli", str(path), *extra],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stdout == "" and word in out.stderr, (extra, out.stderr)
        assert out.stderr.count("\n") == 1


def test_the_parent_and_its_worker_share_the_domains(diverse, one_process, tmp_path, monkeypatch):
    """-j 2 is this process and one forked worker, each solving chunks of the domains."""
    import os

    from cpusolve.engine import parallel

    log = tmp_path / "pids"
    real = parallel.solve_chunk

    def logged(pool, doms, first, *args, **keys):
        with log.open("a") as f:
            f.write(f"{os.getpid()} {len(doms)}\n")
        return real(pool, doms, first, *args, **keys)

    monkeypatch.setattr(parallel, "solve_chunk", logged)
    result = solve(load_pool(diverse), jobs=2)
    assert render(result, "json") == one_process
    done: dict[int, int] = {}
    for pid, n in (line.split() for line in log.read_text().splitlines()):
        done[int(pid)] = done.get(int(pid), 0) + int(n)
    assert len(done) == 2 and os.getpid() in done, done
    assert sum(done.values()) == len(result.domains)


def test_a_kept_cache_shares_its_distinct_problems_with_a_worker(diverse, one_process, tmp_path, monkeypatch):
    """With a kept SolveCache the reports are made here, and the distinct problems first,
    by this process and a forked worker (parallel.shared_map): the same report, each
    problem solved once, both processes solving."""
    import os

    from cpusolve.engine import solve as engine
    from cpusolve.engine.cache import SolveCache

    log = tmp_path / "pids"
    real = engine._optimize_task

    def logged(task):
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return real(task)

    monkeypatch.setattr(engine, "_optimize_task", logged)
    cache = SolveCache()
    result = solve(load_pool(diverse), cache=cache, jobs=2)
    assert render(result, "json") == one_process
    pids = log.read_text().split()
    assert len(set(pids)) == 2 and str(os.getpid()) in pids, set(pids)
    assert len(pids) == cache.stats["optimized"]  # nothing solved again in the report pass


def test_the_collector_is_paused_while_domains_are_solved(diverse, tmp_path, monkeypatch):
    """engine.collector: no cyclic collections in the parent or its forked worker while
    domains are solved, and the caller's collector state back after, error or not."""
    import gc
    import os

    from cpusolve.engine import parallel
    from cpusolve.engine import solve as engine
    from cpusolve.errors import InternalError

    log = tmp_path / "collector"
    real = parallel.solve_chunk

    def logged(*args, **keys):
        with log.open("a") as f:
            f.write(f"{os.getpid()} {gc.isenabled()}\n")
        return real(*args, **keys)

    monkeypatch.setattr(parallel, "solve_chunk", logged)
    assert gc.isenabled()
    solve(load_pool(diverse), jobs=2)
    seen = {tuple(line.split()) for line in log.read_text().splitlines()}
    assert len({pid for pid, _ in seen}) == 2 and {on for _, on in seen} == {"False"}, seen
    assert gc.isenabled()
    monkeypatch.setattr(engine, "check_answer", lambda *a, **k: ["rejected for the test"])
    with pytest.raises(InternalError):
        solve(load_pool(diverse))
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(InternalError):
            solve(load_pool(diverse))
        assert not gc.isenabled()  # a caller's own choice is left alone
    finally:
        gc.enable()


def test_a_rejected_answer_stops_a_parallel_solve(diverse, monkeypatch):
    """The checker's rejection reaches the caller from the parent's chunks and the worker's."""
    from cpusolve.engine import solve as engine
    from cpusolve.errors import InternalError

    monkeypatch.setattr(engine, "check_answer", lambda *a, **k: ["rejected for the test"])
    with pytest.raises(InternalError, match="rejected for the test"):
        solve(load_pool(diverse), jobs=2)


def test_cli_json_with_workers_is_the_one_process_text(diverse, tmp_path):
    """`-j 2 --format json` has its workers write the report too (writers.json_out.JsonChunks):
    the same bytes as one process, in both schemas."""
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(diverse))
    for schema in ("1", "2"):
        cmd = [sys.executable, "-m", "cpusolve.cli", str(path), "--format", "json", "--json-schema", schema]
        here = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        there = subprocess.run(cmd + ["-j", "2"], capture_output=True, text=True, timeout=300)
        assert here.returncode == there.returncode == 1, there.stderr  # some domains are infeasible
        assert there.stdout == here.stdout and there.stderr == here.stderr


def test_expressions_pickled_to_another_process_hash_as_its_own():
    """A dask worker is its own interpreter, with its own string-hash salt: an expression
    sent there (composite nodes keep their hash) must be a key equal to the one made there."""
    import pickle

    from cpusolve.encodings.expr import All, Any, Feature, Not

    e = All((Feature("md-clear"), Not(Any((Feature("rtm"), Feature("hle"))))))
    code = ("import pickle, sys\n"
            "from cpusolve.encodings.expr import All, Any, Feature, Not\n"
            "e = pickle.loads(sys.stdin.buffer.read())\n"
            "f = All((Feature('md-clear'), Not(Any((Feature('rtm'), Feature('hle'))))))\n"
            "print(e == f, {f: 'found'}.get(e))\n")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(e), capture_output=True,
                             timeout=60, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
        assert out.stdout.decode().split() == ["True", "found"], out.stderr.decode()[-400:]


def test_cli_json_with_workers_exits_zero_when_every_domain_is_solved(tmp_path):
    """`-j 2 --format json` keeps the domain records in the workers (engine.solve.solve_written):
    the exit code comes from their statuses alone, 0 when every domain has an answer."""
    pool = json.loads((ROOT / "examples" / "intel-rack.json").read_text())
    del pool["migration"]["edges"]  # the two racks: two domains, each with an answer
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool))
    cmd = [sys.executable, "-m", "cpusolve.cli", str(path), "--format", "json"]
    here = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    there = subprocess.run(cmd + ["-j", "2"], capture_output=True, text=True, timeout=300)
    assert [d["status"] for d in json.loads(here.stdout)["domains"]] == ["ok", "ok"]
    assert here.returncode == there.returncode == 0, there.stderr
    assert there.stdout == here.stdout and there.stderr == here.stderr
