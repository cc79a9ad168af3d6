"""cpusolve benchmarks (issue 6).  Run by hand, never by CI:

    python benchmarks/run.py            # every figure, ~10 minutes on 2 cores
    python benchmarks/run.py --quick    # smaller pools, fewer repetitions, ~2 minutes
    python benchmarks/run.py --profile  # also cProfile the cold CLI and the big pool

Writes ``benchmarks/results.json`` (raw numbers) and ``benchmarks/results.md`` (tables);
``--out PREFIX`` writes elsewhere.  Every answer any figure produces is re-checked with
``cpusolve.checker.check_answer`` and the run stops on the first rejection.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import genpool  # noqa: E402
from virsh_input import domain_xml  # noqa: E402

VIRSH = ["virsh", "-c", "test:///default", "cpu-baseline"]
CPUSOLVE = [sys.executable, "-m", "cpusolve.cli"]


# -- helpers ---------------------------------------------------------------------------
def timed(argv: list[str], stdout=None, cwd=None) -> dict:
    """Wall time, CPU time, peak RSS and exit code of one process (os.wait4)."""
    with tempfile.TemporaryFile() as err:
        out = stdout if stdout is not None else subprocess.DEVNULL
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        msg = err.read().decode(errors="replace")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024,
            "rc": proc.returncode, "stderr": msg[-2000:]}


def med(xs):
    return statistics.median(xs) if xs else None


def cpusolve_cmd() -> list[str]:
    """The command of the interpreter running this script (its venv's entry point): the
    figures are that interpreter's, whichever ``cpusolve`` is first on PATH."""
    exe = Path(sys.executable).with_name("cpusolve")
    if exe.exists():
        return [str(exe)]
    exe = shutil.which("cpusolve")
    return [exe] if exe else CPUSOLVE


def byte_compile() -> None:
    """Compile the package's modules, as ``pip install`` does for an installed package: a
    checkout installed editable under PYTHONDONTWRITEBYTECODE (set on some machines) would
    otherwise compile every module again in every timed process (0.2 s of each run)."""
    import compileall

    for folder in ("solver", "encodings"):
        compileall.compile_dir(str(ROOT / folder), quiet=1)


def python_speed() -> float:
    """Seconds of a fixed pure-Python loop: how fast this interpreter on this machine is, so
    that figures of different days (the same machine kind has run 2x apart) compare."""
    def loop() -> float:
        t0 = time.perf_counter()
        s, d = 0, {}
        for i in range(2_000_000):
            s += i
            d[i % 1000] = d.get(i % 1000, 0) + 1
        return time.perf_counter() - t0
    return round(min(loop() for _ in range(3)), 3)


def env_info() -> dict:
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return None
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    import z3
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "git_head": out(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty_solver": bool(out(["git", "status", "--porcelain", "--", "solver", "encodings"])),
        "python": platform.python_version(), "python_executable": sys.executable,
        "python_loop_s": python_speed(), "z3": z3.get_version_string(),
        "virsh": out(["virsh", "--version"]), "cpus": os.cpu_count(), "cpu_model": cpu,
        "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


_QEMU_ARG = re.compile(r"^\s+qemu:\s+-cpu (\S+)")
_TOPOLOGY = re.compile(r"^\s+topology:\s+threads=(\d+)")
_HEAD = re.compile(r"^Domain (\d+): (\d+) hosts?,.*: ([A-Z-]+)$")


def parse_qemu_arg(arg: str):
    """GuestCpu from a printed ``-cpu`` argument (own parser: independent of the writer)."""
    from cpusolve.core.guest import GuestCpu

    parts = arg.split(",")
    model, plus, minus, fms = parts[0], [], [], {}
    for p in parts[1:]:
        if p == "enforce":
            continue
        if p[0] == "+":
            plus.append(p[1:])
        elif p[0] == "-":
            minus.append(p[1:])
        elif "=" in p:
            k, v = p.split("=", 1)
            fms[k] = int(v, 0)
        else:
            plus.append(p)
    triple = (fms["family"], fms["model"], fms["stepping"]) if fms else None
    return GuestCpu(model=model, plus=tuple(sorted(plus)), minus=tuple(sorted(minus)), fms=triple)


def parse_text(text: str) -> dict[int, dict]:
    """Per domain index: host count, status, guest (from the text report)."""
    out: dict[int, dict] = {}
    cur = None
    for line in text.splitlines():
        m = _HEAD.match(line)
        if m:
            cur = out[int(m.group(1))] = {"hosts": int(m.group(2)), "status": m.group(3).lower(),
                                          "guest": None}
            continue
        m = _TOPOLOGY.match(line)
        if m and cur is not None:
            cur["threads"] = int(m.group(1))
        m = _QEMU_ARG.match(line)
        if m and cur is not None:
            cur["guest"] = parse_qemu_arg(m.group(1))
    import dataclasses

    for a in out.values():  # the topology line comes before the -cpu line
        if a["guest"] is not None and "threads" in a:
            a["guest"] = dataclasses.replace(a["guest"], threads=a.pop("threads"))
    return out


def recheck(pool, doms, answers: dict[int, dict], req) -> dict:
    """Every printed answer re-checked with check_answer; raises on a rejection."""
    from cpusolve.encodings.catalog import catalog
    from cpusolve.verify.checker import check_answer

    cat = catalog()
    if len(answers) != len(doms):
        raise SystemExit(f"benchmark: the report has {len(answers)} domains, expected {len(doms)}")
    checked = 0
    for i, dom in enumerate(doms, start=1):
        a = answers[i]
        if a["hosts"] != len(dom.hosts):
            raise SystemExit(f"benchmark: domain {i} has {a['hosts']} hosts in the report, {len(dom.hosts)} here")
        if a["status"].startswith("ok"):
            if a["guest"] is None:
                raise SystemExit(f"benchmark: domain {i} is {a['status']} without a -cpu line")
            problems = check_answer(cat, dom.types, req, a["guest"])
            if problems:
                raise SystemExit(f"benchmark: CHECKER REJECTED domain {i}: {problems[:3]}")
            checked += 1
    return {"checked_ok_answers": checked}


def status_counts(answers: dict[int, dict]) -> dict:
    out: dict[str, int] = {}
    for a in answers.values():
        out[a["status"]] = out.get(a["status"], 0) + 1
    return dict(sorted(out.items()))


# -- figure 1: one real 3-host domain -----------------------------------------------------
def fig_domain3(reps: int, work: Path) -> dict:
    from cpusolve import load_pool, solve
    from cpusolve.domains.graph import domains
    from cpusolve.encodings.catalog import catalog
    from cpusolve.engine.optimize import optimize
    from cpusolve.verify.checker import check_answer

    rack = json.loads((ROOT / "examples" / "intel-rack.json").read_text())
    names = ["skx-r1", "clx-r1", "icx-r2"]  # Skylake-SP, Cascade Lake, Ice Lake, with microcode
    spec = {"hosts": {n: {k: v for k, v in rack["hosts"][n].items() if k not in ("labels", "count")}
                      for n in names},
            "requirements": rack["requirements"]}
    pool = load_pool(spec)
    cat = catalog()
    (dom,) = domains(pool)
    res = solve(pool)  # warm-up: imports, catalog, rule tables
    d = res.domains[0]
    assert d.status == "ok" and not check_answer(cat, dom.types, pool.requirements, d.guest)
    solve_t, opt_t, full_t = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = solve(pool)
        solve_t.append(time.perf_counter() - t0)
        g = r.domains[0].guest
        assert not check_answer(cat, dom.types, pool.requirements, g), "checker rejected"
        t0 = time.perf_counter()
        optimize(cat, dom.types[0].vendor, dom.types, pool.requirements)
        opt_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        optimize(cat, dom.types[0].vendor, dom.types, pool.requirements, reduce=False)
        full_t.append(time.perf_counter() - t0)
    xml = work / "domain3.xml"
    xml.write_text(domain_xml([pool.hosts[n].facts for n in names], cat))
    vt = [timed(VIRSH + [str(xml)]) for _ in range(reps)]
    assert all(v["rc"] == 0 for v in vt), vt[0]["stderr"]
    baseline = subprocess.run(VIRSH + [str(xml)], capture_output=True, text=True).stdout
    ours = med(solve_t)
    virsh = med([v["wall_s"] for v in vt])
    from cpusolve.core.guest import qemu_cpu_arg
    return {
        "hosts": names, "reps": reps,
        "cpusolve_solve_warm_ms": ours * 1000, "cpusolve_optimize_only_ms": med(opt_t) * 1000,
        "cpusolve_optimize_unreduced_ms": med(full_t) * 1000,
        "cpusolve_solve_all_ms": [round(x * 1000, 1) for x in solve_t],
        "virsh_process_ms": virsh * 1000, "virsh_all_ms": [round(v["wall_s"] * 1000, 1) for v in vt],
        "ratio_ours_over_virsh": ours / virsh, "goal_met": ours <= virsh,
        "cpusolve_answer": qemu_cpu_arg(g),
        "virsh_answer_model": re.search(r"<model[^>]*>([^<]+)<", baseline).group(1),
    }


# -- figure 2: cold CLI -------------------------------------------------------------------
def fig_cold_cli(reps: int) -> dict:
    exs = sorted((ROOT / "examples").glob("*.json"),
                 key=lambda p: (len(json.loads(p.read_text())["hosts"]), p.name))
    cmd = cpusolve_cmd()
    rows = []
    for ex in exs:
        runs = [timed(cmd + [str(ex)]) for _ in range(reps)]
        bad = [r for r in runs if r["rc"] not in (0, 1)]
        assert not bad, f"{ex.name}: exit {bad[0]['rc']}: {bad[0]['stderr']}"
        rows.append({"example": ex.name, "hosts": len(json.loads(ex.read_text())["hosts"]),
                     "rc": runs[0]["rc"], "wall_ms": med([r["wall_s"] for r in runs]) * 1000,
                     "maxrss_mb": med([r["maxrss_mb"] for r in runs])})
    floor = [timed([sys.executable, "-c", "pass"]) for _ in range(reps)]
    imp = [timed([sys.executable, "-c", "import cpusolve.api, cpusolve.writers, cpusolve.cli"])
           for _ in range(reps)]
    small = rows[0]
    return {"reps": reps, "examples": rows, "python_floor_ms": med([r["wall_s"] for r in floor]) * 1000,
            "import_cpusolve_ms": med([r["wall_s"] for r in imp]) * 1000,
            "small_example": small["example"], "small_wall_ms": small["wall_ms"],
            "goal_ms": 600, "goal_met": small["wall_ms"] <= 600,
            "all_examples_goal_met": all(r["wall_ms"] <= 600 for r in rows)}


# -- figure 3: the big pool ---------------------------------------------------------------
def make_pool(work: Path, hosts: int, types: int, doms: int, seed: int = 1) -> Path:
    path = work / f"pool-h{hosts}-t{types}-d{doms}-s{seed}.json"
    if not path.exists():
        data = genpool.generate(hosts, types, doms, seed)
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    return path


def parse_json(text: str) -> dict[int, dict]:
    """Per domain index: host count, status, guest (from a schema 2 JSON report)."""
    doc = json.loads(text)
    if doc.get("schema") != "cpusolve-result/2":
        raise SystemExit(f"benchmark: JSON report schema {doc.get('schema')!r}, expected cpusolve-result/2")
    import dataclasses

    def guest(d):
        if not d["qemu"]:
            return None
        # the topology is not part of -cpu: the report's guest says it (the qemu format's
        # REQUIRED -smp line)
        return dataclasses.replace(parse_qemu_arg(d["qemu"]), threads=d["guest"]["threads"])
    return {d["index"]: {"hosts": len(doc["host_sets"][d["hosts"]]), "status": d["status"],
                         "guest": guest(d)} for d in doc["domains"]}


def run_cli_on(path: Path, work: Path, recheck_answers: bool = True, jobs: int = 1, fmt: str = "text",
               extra: tuple[str, ...] = (), tag: str = "") -> dict:
    from cpusolve import load_pool
    from cpusolve.domains.graph import domains
    from cpusolve.engine.cache import problem_key

    out = work / (path.stem + (f".j{jobs}" if jobs > 1 else "") + tag + (".out.json" if fmt == "json" else ".out.txt"))
    r = timed(cpusolve_cmd() + [str(path), "-o", str(out), "--format", fmt, *extra]
              + (["-j", str(jobs)] if jobs > 1 else []))
    if r["rc"] not in (0, 1):
        raise SystemExit(f"benchmark: cpusolve {path.name} exited {r['rc']}: {r['stderr']}")
    text = out.read_text()
    answers = parse_json(text) if fmt == "json" else parse_text(text)
    pool = load_pool(str(path))
    doms = domains(pool)
    row = {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "maxrss_mb": r["maxrss_mb"], "rc": r["rc"],
           "hosts": len(pool.hosts), "host_types": len({h.facts for h in pool.hosts.values()}),
           "domains": len(doms), "distinct_type_sets": len({d.types for d in doms}),
           "z3_problems": len({problem_key(d.types[0].vendor, d.types, pool.requirements, 0)
                               for d in doms if len({t.vendor for t in d.types}) == 1}),
           "output_mb": len(text.encode()) / 2**20, "status": status_counts(answers),
           "report_sha256": hashlib.sha256(text.encode()).hexdigest()}
    if recheck_answers:
        row.update(recheck(pool, doms, answers, pool.requirements))
    return row, pool, doms


def make_diverse_pool(work: Path, hosts: int, doms: int, seed: int = 1, kinds: int | None = None) -> Path:
    path = work / f"diverse-h{hosts}-d{doms}-s{seed}{f'-t{kinds}' if kinds else ''}.json"
    if not path.exists():
        data = genpool.generate_diverse(hosts, doms, seed, max_kinds=kinds)
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    return path


def fig_big(work: Path, hosts: int, types: int, doms_n: int, runs: int, sample: int) -> dict:
    return fig_pool(make_pool(work, hosts, types, doms_n), work, runs, sample, goal_x=15)


def fig_diverse(work: Path, hosts: int, doms_n: int, runs: int, sample: int) -> dict:
    path = make_diverse_pool(work, hosts, doms_n)
    row = fig_pool(path, work, runs, sample, goal_x=10)
    row["goal_j2_scaling_met"] = row["wall_s"] / row["j2_wall_s"] >= 1.7
    row["phases"] = fig_phases(path, work, runs)
    return row


def fig_phases(path: Path, work: Path, runs: int) -> dict:
    """Serial and shared parts of the whole CLI (benchmarks/phases.py), -j 1 and -j 2
    interleaved, medians: what bounds the -j 2 speed-up (Amdahl)."""
    out = work / (path.stem + ".phases.json")
    rows: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(runs):
        for jobs in (1, 2):
            proc = subprocess.run([sys.executable, str(HERE / "phases.py"), str(path), "--format", "json",
                                   "-j", str(jobs), "-o", str(out)], capture_output=True, text=True)
            last = proc.stderr.strip().splitlines()[-1:] or [""]
            if proc.returncode != 0 or not last[0].startswith("{"):
                raise SystemExit(f"benchmark: phases.py -j {jobs} on {path.name} failed: {proc.stderr[-2000:]}")
            rows[jobs].append(json.loads(last[0]))
    m = {j: {k: med([r[k] for r in rs]) for k in rs[0]} for j, rs in rows.items()}
    t1 = m[1]["wall_s"]
    serial = m[2]["before_s"] + m[2]["after_s"]  # what the parent alone runs with -j 2
    shared1 = t1 - serial  # the rest of a one-process run: what -j can share out
    return {"runs": runs, "j1": m[1], "j2": m[2], "serial_s": serial, "shared_j1_s": shared1,
            "shared_scaling": shared1 / m[2]["shared_s"], "whole_scaling": t1 / m[2]["wall_s"],
            "amdahl_bound_j2": t1 / (serial + shared1 / 2)}


def fig_pool(path: Path, work: Path, runs: int, sample: int, goal_x: float) -> dict:
    """Whole CLI (--format json) with and without -j 2 against virsh cpu-baseline."""
    from cpusolve.encodings.catalog import catalog

    rows, rows2 = [], []
    for _ in range(runs):  # interleaved, so that load from elsewhere hits both alike
        row, pool, doms = run_cli_on(path, work, fmt="json")
        rows.append(row)
        rows2.append(run_cli_on(path, work, jobs=2, fmt="json")[0])
    row = dict(rows[-1])
    row["pool_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    row["wall_s"] = med([r["wall_s"] for r in rows])
    row["all_wall_s"] = [round(r["wall_s"], 2) for r in rows]
    row["j2_wall_s"] = med([r["wall_s"] for r in rows2])
    row["j2_all_wall_s"] = [round(r["wall_s"], 2) for r in rows2]
    row["j2_cpu_s"] = med([r["cpu_s"] for r in rows2])
    row["j2_maxrss_mb"] = max(r["maxrss_mb"] for r in rows2)
    row["j2_report_identical"] = all(r["report_sha256"] == row["report_sha256"] for r in rows + rows2)
    assert row["j2_report_identical"], "reports differ between runs or between -j 1 and -j 2"
    row["runs"] = runs
    # virsh: one process per domain, on a seeded sample of domains, extrapolated.
    cat = catalog()
    rng = random.Random(6)
    picked = rng.sample(range(len(doms)), k=min(sample, len(doms)))
    memo: dict = {}
    per_host, per_type, failed = [], [], 0
    for i in picked:
        d = doms[i]
        f1 = work / "virsh-hosts.xml"
        f1.write_text(domain_xml([pool.hosts[h].facts for h in d.hosts], cat, memo))
        r1 = timed(VIRSH + [str(f1)])
        f2 = work / "virsh-types.xml"
        f2.write_text(domain_xml(d.types, cat, memo))
        r2 = timed(VIRSH + [str(f2)])
        failed += (r1["rc"] != 0)
        per_host.append(r1["wall_s"])
        per_type.append(r2["wall_s"])
    n = len(doms)
    virsh_total = statistics.mean(per_host) * n
    virsh_types_total = statistics.mean(per_type) * n
    row.update({
        "virsh_sample": len(picked), "virsh_failed_in_sample": failed,
        "virsh_mean_ms_per_domain_all_hosts": statistics.mean(per_host) * 1000,
        "virsh_mean_ms_per_domain_distinct_types": statistics.mean(per_type) * 1000,
        "virsh_extrapolated_s": virsh_total, "virsh_types_extrapolated_s": virsh_types_total,
        "speedup_vs_virsh": virsh_total / row["wall_s"], "j2_speedup_vs_virsh": virsh_total / row["j2_wall_s"],
        "j2_scaling": row["wall_s"] / row["j2_wall_s"],
        "goal_x": goal_x,
        "goal_10s_met": min(row["wall_s"], row["j2_wall_s"]) <= 10,
        "goal_x_met": virsh_total / min(row["wall_s"], row["j2_wall_s"]) >= goal_x,
        "goal_10s_met_one_process": row["wall_s"] <= 10,
        "goal_x_met_one_process": virsh_total / row["wall_s"] >= goal_x,
    })
    return row


def fig_dask(work: Path, hosts: int, doms_n: int) -> dict:
    """The diverse pool on a dask LocalCluster of 2 workers, against -j 2 and one process."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return {"skipped": "the 'dask' extra is not installed"}
    path = make_diverse_pool(work, hosts, doms_n)
    local, _, _ = run_cli_on(path, work, fmt="json", recheck_answers=False)
    dask, _, _ = run_cli_on(path, work, fmt="json", extra=("--executor", "dask:local"), jobs=2, tag=".dask",
                            recheck_answers=True)
    return {"wall_s": dask["wall_s"], "cpu_s": dask["cpu_s"], "one_process_wall_s": local["wall_s"],
            "identical": dask["report_sha256"] == local["report_sha256"], "checked_ok_answers":
            dask.get("checked_ok_answers")}


def fig_tier(work: Path, hosts: int, doms_n: int, kinds: int) -> dict:
    """One whole-CLI run of a diverse pool of ``kinds`` host kinds: time, peak memory."""
    path = make_diverse_pool(work, hosts, doms_n, kinds=kinds)
    row, _, _ = run_cli_on(path, work, fmt="json")
    row["pool_command"] = f"python benchmarks/genpool.py --diverse --hosts {hosts} --domains {doms_n} --types {kinds}"
    return row


# -- figure 4: check(guest, host) throughput ------------------------------------------------
def fig_check(work: Path, hosts: int, types: int, doms_n: int, slow_pairs: int) -> dict:
    from cpusolve import load_pool
    from cpusolve.domains.graph import domains
    from cpusolve.encodings.catalog import catalog
    from cpusolve.verify.checker import check_answer
    from cpusolve.verify.fastcheck import FastChecker

    cat = catalog()
    path = make_pool(work, hosts, types, doms_n)
    pool = load_pool(str(path))
    doms = domains(pool)
    out = work / (path.stem + ".out.txt")
    if not out.exists():
        run_cli_on(path, work)
    answers = parse_text(out.read_text())
    member, guests = [], {}
    for i, d in enumerate(doms, start=1):
        g = answers[i]["guest"]
        if g is not None:
            guests[g] = True
            member += [(g, t) for t in d.types]
    guests = list(guests)
    all_types = sorted({h.facts for h in pool.hosts.values()}, key=lambda f: (f.vendor, f.fms, sorted(f.features)))
    rng = random.Random(4)
    half = slow_pairs // 2
    pairs = rng.sample(member, k=min(half, len(member)))
    pairs += [(rng.choice(guests), rng.choice(all_types)) for _ in range(slow_pairs - len(pairs))]
    res: dict = {"guests": len(guests), "host_types": len(all_types), "pairs": len(pairs)}
    for policy in ("compat", "strict"):
        req = dataclasses.replace(pool.requirements, policy=policy)
        crashes: list[str] = []

        def slow_check(g, h, req=req, crashes=crashes):
            try:
                return not check_answer(cat, (h,), req, g)
            except Exception as e:  # a checker bug: count it, leave the pair out of the comparison
                if not crashes:
                    from cpusolve.core.guest import qemu_cpu_arg
                    crashes.append(f"check_answer(host {h.origin}, policy {req.policy}, guest "
                                   f"{qemu_cpu_arg(g)}) raised {type(e).__name__}: {e}")
                else:
                    crashes.append("")
                return None

        t0 = time.perf_counter()
        slow = [slow_check(g, h) for g, h in pairs]
        t_slow = time.perf_counter() - t0
        from cpusolve.api import check as public_check
        t0 = time.perf_counter()
        pub_v = [public_check(g, h, req).ok for g, h in pairs]
        pub = len(pairs) / (time.perf_counter() - t0)
        # What a scheduler's filter calls: no reasons; guests and hosts seen before are cached.
        for g, h in pairs:
            public_check(g, h, req, reasons=False)
        t0 = time.perf_counter()
        for _ in range(3):
            quick_v = [public_check(g, h, req, reasons=False).ok for g, h in pairs]
        pub_fast = 3 * len(pairs) / (time.perf_counter() - t0)
        assert quick_v == pub_v, "check(reasons=False) disagrees with check()"
        fc = FastChecker(cat, req)
        t0 = time.perf_counter()
        fast = [fc.check(g, h) for g, h in pairs]
        t_cold = time.perf_counter() - t0
        mism = sum(a is not None and a != b for a, b in zip(slow, fast, strict=True))
        assert mism == 0, f"bitset checker disagrees with check_answer on {mism} pairs"
        fc2 = FastChecker(cat, req, host_fms_rule=False)
        mism_public = sum(a is not None and a != fc2.check(g, h) for a, (g, h) in zip(pub_v, pairs, strict=True))
        # Warm: every (guest, host type) pair of the pool, bitsets cached.
        grid = [(g, t) for g in guests for t in all_types]
        t0 = time.perf_counter()
        n_ok = sum(fc.check(g, h) for g, h in grid)
        t_grid_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(3):
            for g, h in grid:
                fc.check(g, h)
        t_grid = (time.perf_counter() - t0) / 3
        gb = [fc.guest(g) for g, _ in grid]
        hb = [fc.host(h) for _, h in grid]
        cb = fc.check_bits
        t0 = time.perf_counter()
        for a, b in zip(gb, hb, strict=True):
            cb(a, b)
        t_bits = time.perf_counter() - t0
        res[policy] = {
            "bitset_vs_public_check_mismatches": mism_public,
            "public_check_no_reasons_per_s": pub_fast,
            "check_answer_crashes": len(crashes), "check_answer_crash_example": crashes[0] if crashes else None,
            "pass_rate_sample": sum(1 for x in slow if x) / len(pairs),
            "check_answer_per_s": len(pairs) / t_slow,
            "public_check_per_s": pub,
            "bitset_first_sight_per_s": len(pairs) / t_cold,
            "bitset_grid_pairs": len(grid), "bitset_grid_ok": n_ok,
            "bitset_grid_incl_precompute_per_s": len(grid) / t_grid_first,
            "bitset_cached_per_s": len(grid) / t_grid,
            "bitset_ops_only_per_s": len(grid) / t_bits,
            "agree_with_check_answer": True,
        }
    res["goal_per_s"] = 100_000
    res["goal_met_public_check"] = min(res[p]["public_check_no_reasons_per_s"] for p in ("compat", "strict")) >= 100_000
    res["goal_met_bitset"] = res["compat"]["bitset_cached_per_s"] >= 100_000
    return res


# -- figure 5: growth ---------------------------------------------------------------------
def fig_scaling(work: Path, configs: list[tuple[str, int, int, int]]) -> list[dict]:
    rows = []
    for vary, h, t, d in configs:
        path = make_pool(work, h, t, d)
        row, _, _ = run_cli_on(path, work)
        row["vary"] = vary
        rows.append(row)
        print(f"  scaling {vary}: {h} hosts, {t} types, {d} domains: {row['wall_s']:.1f} s, "
              f"{row['maxrss_mb']:.0f} MB", flush=True)
    return rows


# -- profiles -------------------------------------------------------------------------------
def profiles(work: Path, big: Path, limit_domains: int, dest: Path) -> dict:
    import cProfile
    import io
    import pstats

    out = {}
    prof = work / "cold.prof"
    ex = ROOT / "examples" / "intel-rack.json"
    code = (f"import cProfile,sys;sys.argv=['cpusolve',{str(ex)!r}];"
            f"cProfile.run('from cpusolve.cli import main\\ntry: main()\\nexcept SystemExit: pass',{str(prof)!r})")
    subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, check=True)
    out["cold_cli"] = _top(pstats, io, prof)
    # The big pool, in-process: the first ``limit_domains`` domains (the profile's overhead
    # would otherwise double the run); the per-domain costs are what matter.
    from cpusolve import api, load_pool
    from cpusolve.domains.graph import domains

    pool = load_pool(str(big))
    every = domains(pool)
    doms = every[:: max(1, len(every) // limit_domains)][:limit_domains]  # spread over the pool
    orig = api.domains
    api.domains = lambda p: doms
    try:
        pr = cProfile.Profile()
        pr.enable()
        api.solve(pool)
        pr.disable()
    finally:
        api.domains = orig
    prof2 = work / "big.prof"
    pr.dump_stats(str(prof2))
    out["big_pool"] = _top(pstats, io, prof2)
    out["big_pool_domains_profiled"] = len(doms)
    out["big_pool_domains_total"] = len(every)
    for name in ("cold_cli", "big_pool"):
        dest.mkdir(parents=True, exist_ok=True)
        (dest / f"{name}.txt").write_text(out[name]["text"])
    return out


def _top(pstats, io, prof: Path) -> dict:
    s = io.StringIO()
    st = pstats.Stats(str(prof), stream=s)
    st.strip_dirs().sort_stats("cumulative").print_stats(40)
    st.sort_stats("tottime").print_stats(25)
    return {"text": s.getvalue(), "total_s": st.total_tt}


# -- report ---------------------------------------------------------------------------------
def markdown(r: dict) -> str:
    L = ["# cpusolve benchmark results", "",
         f"`python benchmarks/run.py{' --quick' if r['quick'] else ''}` on {r['env']['date']}, "
         f"{r['env']['cpus']} CPUs ({r['env']['cpu_model']}), {r['env']['mem_gb']} GB, "
         f"Python {r['env']['python']} ({r['env'].get('python_executable')}, "
         f"a fixed loop {r['env'].get('python_loop_s')} s), "
         f"Z3 {r['env']['z3']}, virsh {r['env']['virsh']}, "
         f"git {r['env']['git_head']}{' (solver tree dirty)' if r['env']['git_dirty_solver'] else ''}. "
         f"Total {r['total_s']:.0f} s. Load average at start {r['env']['loadavg_start']}, at end "
         f"{r['env'].get('loadavg_end')} (anything above ~1 means other work shared the 2 cores).", ""]
    yes = {True: "met", False: "**not met**"}
    L += ["## Figures (same data side by side)", "",
          "| figure | cpusolve | virsh cpu-baseline | goal | |", "|---|---|---|---|---|"]
    f1 = r.get("domain3")
    if f1:
        L.append(f"| one real 3-host domain (median of {f1['reps']}) | {f1['cpusolve_solve_warm_ms']:.1f} ms "
                 f"in-process warm `solve()` (`optimize()` alone {f1['cpusolve_optimize_only_ms']:.1f} ms; "
                 f"unreduced problem {f1['cpusolve_optimize_unreduced_ms']:.0f} ms) "
                 f"| {f1['virsh_process_ms']:.0f} ms whole process | ours <= virsh | "
                 f"{yes[f1['goal_met']]} ({f1['ratio_ours_over_virsh']:.2f}x virsh's time) |")
    f2 = r.get("cold_cli")
    if f2:
        L.append(f"| cold CLI `cpusolve examples/{f2['small_example']}` (median of {f2['reps']}) "
                 f"| {f2['small_wall_ms']:.0f} ms | - | <= 600 ms | {yes[f2['goal_met']]} |")
    for key, label in (("big", "benchmark pool"), ("diverse", "diverse pool")):
        f3 = r.get(key)
        if not f3:
            continue
        L.append(f"| {label}: {f3['hosts']:,} hosts / {f3['host_types']:,} host kinds / {f3['domains']:,} domains "
                 f"({f3['z3_problems']:,} distinct problems), whole CLI `--format json` (median of {f3['runs']}) "
                 f"| {f3['wall_s']:.1f} s, {f3['maxrss_mb']:,.0f} MB peak; `-j 2`: {f3['j2_wall_s']:.1f} s "
                 f"({f3['j2_scaling']:.2f}x) | {f3['virsh_extrapolated_s']:.1f} s "
                 f"(one process per domain; {f3['virsh_sample']} sampled, extrapolated) | "
                 f"<= 10 s and >= {f3['goal_x']:g}x virsh | 10 s {yes[f3['goal_10s_met']]} "
                 f"(one process: {yes[f3['goal_10s_met_one_process']]}); "
                 f"{f3['speedup_vs_virsh']:.1f}x virsh (`-j 2`: {f3['j2_speedup_vs_virsh']:.1f}x), "
                 f"{yes[f3['goal_x_met']]} |")
    fv = r.get("diverse")
    if fv and fv.get("phases"):
        ph = fv["phases"]
        L.append(f"| diverse pool, `-j 2` against one process (the runs above; phases: medians of {ph['runs']} more "
                 f"each) | {fv['j2_scaling']:.2f}x whole CLI ({ph['whole_scaling']:.2f}x in the phase runs); the "
                 f"part `-j` shares {ph['shared_scaling']:.2f}x; bound by the parent's serial "
                 f"{ph['serial_s']:.2f} s: {ph['amdahl_bound_j2']:.2f}x | - | >= 1.7x | "
                 f"{yes[fv['goal_j2_scaling_met']]} |")
    fd = r.get("dask")
    if fd and "skipped" not in fd:
        L.append(f"| diverse pool on a dask LocalCluster of 2 workers (`--executor dask:local -j 2`) | "
                 f"{fd['wall_s']:.1f} s (one process {fd['one_process_wall_s']:.1f} s); report identical: "
                 f"{fd['identical']} | - | output identical | {yes[fd['identical']]} |")
    ft = r.get("tier")
    if ft:
        L.append(f"| 100,000-host tier: {ft['hosts']:,} hosts / {ft['host_types']:,} kinds / {ft['domains']:,} "
                 f"domains, whole CLI `--format json`, one run | {ft['wall_s']:.1f} s, {ft['maxrss_mb']:,.0f} MB "
                 f"peak, report {ft['output_mb']:.0f} MB | - | measured | - |")
    f4 = r.get("check")
    if f4:
        c = f4["compat"]
        L.append(f"| `check(guest, host)` throughput | public `check(..., reasons=False)` "
                 f"{c['public_check_no_reasons_per_s']:,.0f}/s (with reasons {c['public_check_per_s']:,.0f}/s; "
                 f"`check_answer` {c['check_answer_per_s']:,.0f}/s) | - | >= 100,000/s | "
                 f"{yes[f4['goal_met_public_check']]} |")
    L.append("")
    if f2:
        L += ["## Cold CLI, every example", "", "| example | hosts | exit | wall ms | peak RSS MB |",
              "|---|---|---|---|---|"]
        L += [f"| {e['example']} | {e['hosts']} | {e['rc']} | {e['wall_ms']:.0f} | {e['maxrss_mb']:.0f} |"
              for e in f2["examples"]]
        L += ["", f"`python -c pass`: {f2['python_floor_ms']:.0f} ms; importing cpusolve.api + writers + cli: "
              f"{f2['import_cpusolve_ms']:.0f} ms (whole process).", ""]
    for f3 in (r.get("big"), r.get("diverse")):
        if not f3:
            continue
        st = ", ".join(f"{k} {v}" for k, v in f3["status"].items())
        L += ["## " + ("Diverse pool" if "diverse" in f3["pool_command"] else "Benchmark pool"), "",
              f"`{f3['pool_command']}`: {f3['hosts']:,} hosts, {f3['host_types']} distinct host fact sets, "
              f"{f3['domains']:,} distinct reachability sets (domains), {f3['distinct_type_sets']} distinct "
              f"host-type sets, {f3['z3_problems']} distinct Z3 problems (the solver's own cache: equal common "
              f"features, bugs and host f/m/s). Status: {st}. "
              f"{f3['checked_ok_answers']} answers re-checked with `check_answer`: all passed. "
              f"CLI wall {f3['wall_s']:.1f} s (runs: {f3['all_wall_s']}), CPU {f3['cpu_s']:.1f} s, "
              f"peak RSS {f3['maxrss_mb']:,.0f} MB, JSON report {f3['output_mb']:.1f} MB. With `-j 2`: wall "
              f"{f3['j2_wall_s']:.1f} s (runs: {f3['j2_all_wall_s']}), CPU {f3['j2_cpu_s']:.1f} s, peak RSS "
              f"{f3['j2_maxrss_mb']:,.0f} MB (parent process); every report byte-identical.", "",
              f"virsh: {f3['virsh_sample']} domains sampled (seed 6), one `cpu-baseline` process each: "
              f"{f3['virsh_mean_ms_per_domain_all_hosts']:.1f} ms mean with one `<cpu>` per host, "
              f"{f3['virsh_mean_ms_per_domain_distinct_types']:.1f} ms with one per distinct host type; "
              f"extrapolated to all {f3['domains']:,} domains: {f3['virsh_extrapolated_s']:.1f} s / "
              f"{f3['virsh_types_extrapolated_s']:.1f} s. virsh failures in the sample: "
              f"{f3['virsh_failed_in_sample']}.", ""]
        ph = f3.get("phases")
        if ph:
            a, b = ph["j1"], ph["j2"]
            L += [f"Where the time goes (`benchmarks/phases.py`, medians of {ph['runs']} interleaved runs each, in "
                  f"one process with clocks around the parent's stages): one process {a['wall_s']:.2f} s = imports "
                  f"{a['imports_s']:.2f}, reading the pool {a['load_s']:.2f}, domains {a['domains_s']:.2f}, solving "
                  f"{a['shared_s']:.2f}, JSON writer and file {a['after_s']:.2f}; `-j 2` {b['wall_s']:.2f} s = "
                  f"{b['before_s']:.2f} before the workers, {b['shared_s']:.2f} solving and writing the domains in "
                  f"two processes, {b['after_s']:.2f} joining and writing. The parent alone runs "
                  f"{ph['serial_s']:.2f} s of it, so the rest of a one-process run ({ph['shared_j1_s']:.2f} s) "
                  f"is what `-j` shares: that part scales {ph['shared_scaling']:.2f}x, "
                  f"the whole run {ph['whole_scaling']:.2f}x, and no "
                  f"2-process run can beat {ph['amdahl_bound_j2']:.2f}x (Amdahl: T1 / (serial + shared / 2)).", ""]
    if f4:
        L += ["## check(guest, host)", "",
              f"{f4['pairs']:,} (guest, host type) pairs, half a domain's answer with one of its own host "
              f"types, half random; {f4['guests']} distinct answers x {f4['host_types']} host types for the grid.", "",
              "| policy | pass rate | check_answer /s | public check() /s | check(reasons=False) /s | "
              "bitset first sight /s | bitset grid incl. precompute /s | bitset cached /s | bitset ops only /s |",
              "|---|---|---|---|---|---|---|---|---|"]
        for p in ("compat", "strict"):
            c = f4[p]
            L.append(f"| {p} | {c['pass_rate_sample']:.0%} | {c['check_answer_per_s']:,.0f} | "
                     f"{c['public_check_per_s']:,.0f} | {c['public_check_no_reasons_per_s']:,.0f} | "
                     f"{c['bitset_first_sight_per_s']:,.0f} | {c['bitset_grid_incl_precompute_per_s']:,.0f} | "
                     f"{c['bitset_cached_per_s']:,.0f} | {c['bitset_ops_only_per_s']:,.0f} |")
        for p in ("compat", "strict"):
            if f4[p].get("check_answer_crashes"):
                L += ["", f"**Checker crash** ({p}): {f4[p]['check_answer_crashes']} of {f4['pairs']} pairs; "
                      f"first: `{f4[p]['check_answer_crash_example']}` (those pairs are left out of the "
                      "comparison)."]
        L += ["", "The bitset checker's (`cpusolve.fastcheck`) verdict equals `not check_answer(...)` on every "
              "sampled pair (asserted), and `check(reasons=False)` equals `check()` (asserted). Against public "
              "`check().ok` (which does not apply check_answer's \"shown f/m/s is the model's or a host's\" rule "
              "to a single host; the bitset checker relaxed the same way) it "
              f"disagrees on {f4['compat']['bitset_vs_public_check_mismatches']} (compat) / "
              f"{f4['strict']['bitset_vs_public_check_mismatches']} (strict) pairs.", ""]
    f5 = r.get("scaling")
    if f5:
        L += ["## Growth (whole CLI, one run each)", "",
              "| varied | hosts | host types | domains | host-type sets | Z3 problems | feasible / infeasible | "
              "wall s | CPU s | peak RSS MB | report MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in f5:
            ok = sum(v for k, v in x["status"].items() if k.startswith("ok"))
            L.append(f"| {x['vary']} | {x['hosts']:,} | {x['host_types']} | {x['domains']:,} | "
                     f"{x['distinct_type_sets']} | {x['z3_problems']} | {ok} / {x['domains'] - ok} | "
                     f"{x['wall_s']:.1f} | {x['cpu_s']:.1f} | {x['maxrss_mb']:,.0f} | {x['output_mb']:.1f} |")
        L.append("")
    if r.get("profiles"):
        p = r["profiles"]
        L += ["## Profiles", "", f"cProfile text in `profiles/` next to this file (cold CLI on intel-rack.json; "
              f"in-process `solve()` on {p['big_pool_domains_profiled']} of the big pool's "
              f"{p['big_pool_domains_total']} domains, every k-th).", ""]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description="cpusolve benchmarks (by hand, not CI)")
    ap.add_argument("--quick", action="store_true", help="smaller pools and fewer repetitions (~2 min)")
    ap.add_argument("--only", default="", help="comma list: domain3,cold,big,diverse,dask,check,scaling,tier")
    ap.add_argument("--profile", action="store_true", help="also cProfile the cold CLI and the big pool")
    ap.add_argument("--big-runs", type=int, default=None,
                    help="whole-CLI runs of the big pool, median reported (default 3; --quick 1)")
    ap.add_argument("--virsh-sample", type=int, default=100)
    ap.add_argument("--out", default=str(HERE / "results"), help="writes OUT.json and OUT.md")
    ap.add_argument("--workdir", default=None, help="keep generated pools and reports here")
    a = ap.parse_args(argv)
    only = set(filter(None, a.only.split(",")))
    def want(k: str) -> bool:
        return not only or k in only
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="cpusolve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if a.quick:
        big = (2_000, 100, 400)
        reps, slow_pairs = 5, 1_000
        scaling = [("hosts", 500, 10, 25), ("hosts", 2_000, 10, 25),
                   ("types", 2_000, 25, 25), ("domains", 2_000, 10, 100)]
    else:
        big = (10_000, 500, 2_000)
        reps, slow_pairs = 9, 3_000
        scaling = [("hosts", 500, 25, 50), ("base", 2_000, 25, 50), ("hosts", 8_000, 25, 50),
                   ("types", 2_000, 10, 50), ("types", 2_000, 100, 50),
                   ("domains", 2_000, 25, 200), ("domains", 2_000, 25, 800)]
    t_all = time.perf_counter()
    byte_compile()
    r: dict = {"quick": a.quick, "env": env_info()}
    if want("domain3"):
        print("figure 1: one 3-host domain, in-process vs virsh", flush=True)
        r["domain3"] = fig_domain3(reps, work)
    if want("cold"):
        print("figure 2: cold CLI on the examples", flush=True)
        r["cold_cli"] = fig_cold_cli(max(3, reps // 2 + 1))
    if want("big"):
        print(f"figure 3: {big[0]:,} hosts / {big[1]} types / {big[2]:,} domains, whole CLI vs virsh", flush=True)
        runs = a.big_runs if a.big_runs is not None else (1 if a.quick else 3)
        r["big"] = fig_big(work, *big, runs=runs, sample=a.virsh_sample)
        r["big"]["pool_command"] = (f"python benchmarks/genpool.py --hosts {big[0]} --types {big[1]} "
                                    f"--domains {big[2]} --seed 1")
    if want("diverse"):
        dv = (2_000, 400) if a.quick else (10_000, 2_000)
        print(f"figure 3b: diverse {dv[0]:,} hosts / {dv[1]:,} domains, whole CLI vs virsh", flush=True)
        runs = a.big_runs if a.big_runs is not None else (1 if a.quick else 3)
        r["diverse"] = fig_diverse(work, *dv, runs=runs, sample=a.virsh_sample)
        r["diverse"]["pool_command"] = f"python benchmarks/genpool.py --diverse --hosts {dv[0]} --domains {dv[1]}"
    if want("dask"):
        dv = (2_000, 400) if a.quick else (10_000, 2_000)
        print("figure 3c: the diverse pool on a dask LocalCluster", flush=True)
        r["dask"] = fig_dask(work, *dv)
    if "tier" in only:  # by name only: one run of several minutes
        print("figure 3d: the 100,000-host tier (one run)", flush=True)
        r["tier"] = fig_tier(work, 100_000, 20_000, 10_000)
    if want("check"):
        print("figure 4: check(guest, host) throughput", flush=True)
        r["check"] = fig_check(work, *big, slow_pairs=slow_pairs)
    if want("scaling"):
        print("figure 5: growth with hosts, types, domains", flush=True)
        r["scaling"] = fig_scaling(work, scaling)
        if "big" in r:
            b = r["big"]
            r["scaling"].append({k: b[k] for k in ("wall_s", "cpu_s", "maxrss_mb", "hosts", "host_types",
                                                   "domains", "distinct_type_sets", "z3_problems", "output_mb",
                                                   "status")}
                                | {"vary": "big pool"})
    if a.profile:
        print("profiles: cold CLI and big pool (cProfile)", flush=True)
        r["profiles"] = profiles(work, make_pool(work, *big), 60 if a.quick else 150,
                                 Path(a.out).resolve().parent / "profiles")
        for k in ("cold_cli", "big_pool"):
            r["profiles"][k].pop("text", None)
    r["total_s"] = time.perf_counter() - t_all
    r["env"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(r, indent=1, sort_keys=True, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(r))
    print(markdown(r))
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
