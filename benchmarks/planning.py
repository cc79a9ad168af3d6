"""Fleet-planning benchmarks (issue 18), by hand:

    python benchmarks/planning.py            # split on the diverse 10,000-host pool; rollout of
                                             # a microcode change across 1,000 hosts, 3,000 guests
    python benchmarks/planning.py --quick    # 2,000 hosts / 300 hosts, 900 guests

Both through the whole CLI (``--format json``), timed with peak memory, and re-checked here:
every part's answer of the split with the checker on the part's hosts, and the rollout's
plan replayed host by host with ``cpusolve.check``.  Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import genpool  # noqa: E402
from run import CPUSOLVE, env_info, timed  # noqa: E402


def fig_split(work: Path, hosts: int, doms: int) -> dict:
    from cpusolve.api import load_pool
    from cpusolve.encodings.catalog import catalog
    from cpusolve.engine.solve import domain_requirements
    from cpusolve.inputs.guest_cpu import parse_qemu_cpu
    from cpusolve.verify.checker import check_answer

    path = work / f"diverse-{hosts}.json"
    if not path.exists():
        path.write_text(json.dumps(genpool.generate_diverse(hosts, doms, seed=1)))
    out = work / "split.json"
    t = timed([*CPUSOLVE, "split", str(path), "--format", "json", "-o", str(out)])
    data = json.loads(out.read_text())
    pool = load_pool(str(path))
    cat = catalog()
    checked = 0
    for c in data["components"]:
        for p in c["parts"]:
            if not p["answer"] or p["answer"].startswith("several"):
                continue
            types = tuple(dict.fromkeys(pool.hosts[h].facts for h in p["hosts"]))
            req = domain_requirements(pool.requirements, types)
            guest = dataclasses.replace(parse_qemu_cpu(p["answer"]), threads=p["threads"])  # not in -cpu
            found = check_answer(cat, types, req, guest)
            if found:
                raise SystemExit(f"split: part {p['hosts'][:3]} answer rejected: {found[:2]}")
            checked += 1
    return {"hosts": hosts, "domains": doms, "wall_s": t["wall_s"], "cpu_s": t["cpu_s"], "maxrss_mb": t["maxrss_mb"],
            "rc": t["rc"], "components": len(data["components"]),
            "domains_after": data["domains_after"], "without_answer_before": data["without_answer_before"],
            "without_answer_after": data["without_answer_after"], "parts_rechecked": checked,
            "methods": sorted({c["method"] for c in data["components"]}),
            "command": f"cpusolve split {path.name} --format json"}


def fig_rollout(work: Path, hosts: int, guests: int) -> dict:
    from cpusolve.api import check, load_pool, solve

    path = work / f"rollout-{hosts}.json"
    path.write_text(json.dumps(genpool.generate(hosts, max(10, hosts // 20), max(10, hosts // 5), seed=3)))
    pool = load_pool(str(path))
    result = solve(pool)
    rng = random.Random(3)
    answered = [(d, h) for d in result.domains if d.guest is not None for h in d.starts]
    from cpusolve.core.guest import qemu_cpu_arg

    listing, pinned = [], 0
    for i in range(guests):
        d, h = answered[rng.randrange(len(answered))]
        cpu = d.guest
        if i % 5 == 0:  # a fifth pinned to TSX where every host of the domain runs it
            tsx = dataclasses.replace(cpu, plus=tuple(sorted(set(cpu.plus) | {"hle", "rtm"})),
                                      minus=tuple(m for m in cpu.minus if m not in ("hle", "rtm")))
            if all(check(tsx, pool.hosts[r.name].facts, pool.requirements, reasons=False).ok for r in d.hosts):
                cpu, pinned = tsx, pinned + 1
        listing.append({"name": f"vm{i:05d}", "cpu": qemu_cpu_arg(cpu), "host": h}
                       | ({"threads": cpu.threads} if cpu.threads > 1 else {}))
    gpath = work / f"guests-{guests}.json"
    gpath.write_text(json.dumps({"guests": listing}))
    # Intel's TSX deprecation microcode on every Intel host, and a host kernel upgrade on all
    changes = ["i*:-hle,-rtm", "*:kernel=6.12"]
    out = work / "rollout.json"
    t = timed([*CPUSOLVE, "rollout", str(path), "--guests", str(gpath), *(x for c in changes for x in ("--change", c)),
               "--format", "json", "-o", str(out)])
    data = json.loads(out.read_text())
    replayed = replay(pool, listing, data, changes) if data["status"] == "ok" else 0
    change = " ".join(changes)
    return {"hosts": hosts, "guests": guests, "change": change, "tsx_pinned": pinned,
            "wall_s": t["wall_s"], "cpu_s": t["cpu_s"],
            "maxrss_mb": t["maxrss_mb"], "rc": t["rc"], "status": data["status"],
            "hosts_changed": sum(len(s["hosts"]) for s in data["steps"] if s["action"] != "change-cpus"),
            "steps": len(data["steps"]),
            "guests_cpu_change": sum(1 for g in data["guests"] if g["status"] == "cpu-change"),
            "guests_unaffected": sum(1 for g in data["guests"] if g["status"] == "unaffected"),
            "checks_replayed_here": replayed, "states_checked": data["states_checked"],
            "method": data["method"], "blockers": data["blockers"][:5],
            "command": f"cpusolve rollout {path.name} --guests {gpath.name} "
                       + " ".join(f"--change '{c}'" for c in changes) + " --format json"}


def replay(pool, listing, data, changes) -> int:
    """The plan's steps host by host with the public check(): every guest, every host it may
    reach, at every moment (guest domains from the pool's graph before and after)."""
    from cpusolve.api import check
    from cpusolve.domains.graph import domains
    from cpusolve.inputs.guest_cpu import parse_qemu_cpu
    from cpusolve.planning.changes import plan_changes

    plan = plan_changes(pool, changes)
    before = {s: d.hosts for d in domains(pool) for s in d.starts}
    after = {s: d.hosts for d in domains(plan.after) for s in d.starts}
    facts = {h: x.facts for h, x in pool.hosts.items()}
    cpu = {g["name"]: dataclasses.replace(parse_qemu_cpu(g["cpu"]), threads=g.get("threads", 1)) for g in listing}
    reach = {g["name"]: set(before[g["host"]]) | set(after.get(g["host"], ())) for g in listing}
    reachers: dict[str, list[str]] = {}
    for name, hs in reach.items():
        for h in hs:
            reachers.setdefault(h, []).append(name)
    n = 0
    for step in data["steps"]:
        if step["action"] == "change-cpus":
            for g in step["guests"]:
                cpu[g["guest"]] = dataclasses.replace(parse_qemu_cpu(g["to"]), threads=g.get("threads", 1))
                for h in reach[g["guest"]]:
                    assert check(cpu[g["guest"]], facts[h], pool.requirements, reasons=False).ok
                    n += 1
            continue
        for h in step["hosts"]:
            new = plan.after.hosts[h].facts
            for name in reachers.get(h, ()):
                if not check(cpu[name], new, pool.requirements, reasons=False).ok:
                    raise SystemExit(f"rollout: {name} not safe on {h} as it is updated")
                n += 1
            facts[h] = new
    return n


def markdown(r: dict) -> str:
    s, ro = r["split"], r["rollout"]
    return "\n".join([
        "# Fleet planning benchmarks", "",
        f"Machine: {r['env'].get('cpus')} CPUs, Python {r['env'].get('python')}; whole CLI, `--format json`.", "",
        "| figure | wall | CPU | peak RSS | what | goal |", "|---|---|---|---|---|---|",
        f"| split, diverse {s['hosts']:,} hosts / {s['domains']:,} domains | {s['wall_s']:.1f} s | {s['cpu_s']:.1f} s "
        f"| {s['maxrss_mb']:.0f} MB | {s['components']:,} components split ({', '.join(s['methods'])}); domains "
        f"without an answer {s['without_answer_before']:,} -> {s['without_answer_after']:,} (hosts with none even "
        f"alone); {s['parts_rechecked']:,} part answers re-checked here | < 60 s |",
        f"| rollout `{ro['change']}`, {ro['hosts']:,} hosts / {ro['guests']:,} guests | {ro['wall_s']:.1f} s "
        f"| {ro['cpu_s']:.1f} s | {ro['maxrss_mb']:.0f} MB | {ro['status']}: {ro['hosts_changed']:,} hosts updated "
        f"in {ro['steps']} steps ({ro['method']}), {ro['guests_cpu_change']:,} guests change CPU ({ro['tsx_pinned']:,} "
        f"pinned to TSX); {ro['checks_replayed_here']:,} checks replayed here | < 60 s |", ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="cpusolve fleet-planning benchmarks (by hand, not CI)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "planning-results"))
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args(argv)
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="cpusolve-plan-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    r = {"env": env_info(), "quick": a.quick}
    print("split on the diverse pool", flush=True)
    r["split"] = fig_split(work, *((2_000, 400) if a.quick else (10_000, 2_000)))
    print("rollout of a microcode change", flush=True)
    r["rollout"] = fig_rollout(work, *((300, 900) if a.quick else (1_000, 3_000)))
    r["total_s"] = time.perf_counter() - t0
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(r, indent=1, sort_keys=True, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(r))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
