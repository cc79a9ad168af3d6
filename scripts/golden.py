"""Behaviour fingerprints: prove that a refactoring changed no output.

    python scripts/golden.py write golden.json      # before the change
    python scripts/golden.py check golden.json      # after: lists every output that differs

Runs the CLI (in-process, each command a fresh ``cpusolve.cli.main`` call) on every
example in every format and policy, the README's what-if, suggest, audit and verdict
commands, the benchmark generator's 10,000-host pool (text and JSON) and a seeded audit of
300 guests on it, and records the SHA-256 of each stdout with the exit code.  ``--quick``
leaves out the big pool (a few seconds instead of a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.json"))
FORMATS = ("text", "json", "qemu", "libvirt", "nova", "dot")


def run_cli(argv: list[str]) -> tuple[int, str]:
    """One cpusolve command in a subprocess (exit code, stdout): the CLI exits the process."""
    proc = subprocess.run([sys.executable, "-m", "cpusolve.cli", *argv], capture_output=True, text=True,
                          cwd=ROOT)
    return proc.returncode, proc.stdout


def commands(quick: bool, work: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ex in EXAMPLES:
        rel = str(ex.relative_to(ROOT))
        for fmt in FORMATS:
            out[f"{ex.name} {fmt}"] = [rel, "--format", fmt]
        out[f"{ex.name} compat json"] = [rel, "--format", "json", "--policy", "compat"]
        out[f"{ex.name} 6.1 qemu7.2 json"] = [rel, "--format", "json", "--kernel", "6.1", "--qemu", "7.2"]
    out["one-old-host without"] = ["examples/one-old-host.json", "--without", "bdw-legacy"]
    out["one-old-host without json"] = ["examples/one-old-host.json", "--without", "bdw-legacy", "--format", "json"]
    out["one-old-host suggest"] = ["examples/one-old-host.json", "--suggest", "1"]
    out["intel-rack add"] = ["examples/intel-rack.json", "--add", "icx-09=Icelake-Server-v7,+md-clearx8@clx-01"]
    out["fleet pool"] = ["examples/fleet/pool.json", "--format", "json"]
    out["fleet audit"] = ["audit", "examples/fleet/pool.json", "--guests", "examples/fleet/guests.json"]
    out["fleet audit json"] = ["audit", "examples/fleet/pool.json", "--guests", "examples/fleet/guests.json",
                               "--format", "json"]
    for cpu in ("Westmere-v1", "Westmere-v2,family=6,model=85,stepping=4", "EPYC-Rome-v4",
                "Cascadelake-Server-v5,-hle,-rtm", "Skylake-Server-v4,+md-clear,-arch-capabilities"):
        for k in ("6.1", "6.12"):
            out[f"verdict {cpu} {k}"] = ["verdict", cpu, "--kernel", k, "--format", "json"]
    if not quick:
        big = work / "big.json"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "genpool.py"), "--hosts", "10000",
                        "--types", "500", "--domains", "2000", "--seed", "1", "-o", str(big)], check=True)
        guests = work / "guests.json"
        guests.write_text(json.dumps(audit_guests(big)))
        out["big text"] = [str(big)]
        out["big json"] = [str(big), "--format", "json"]
        out["big audit 300"] = ["audit", str(big), "--guests", str(guests), "--format", "json"]
    return out


def audit_guests(pool_path: Path, n: int = 300, images: int = 10, seed: int = 7) -> dict:
    """300 guests of 10 images on random hosts of the big pool (seeded)."""
    pool = json.loads(pool_path.read_text())
    hosts = sorted(pool["hosts"])
    rng = random.Random(seed)
    intel = ["Westmere-v1", "Skylake-Server-v1", "Skylake-Server-v4,+md-clear,+flush-l1d,+ssbd,+stibp",
             "Cascadelake-Server-v2", "Haswell-v4", "Icelake-Server-v4"]
    amd = ["EPYC-v4", "EPYC-Rome-v2", "EPYC-Milan-v2,+ibpb-brtype", "EPYC-v1"]
    vendor_of = {}
    for name, spec in pool["hosts"].items():
        vendor_of[name] = "amd" if "EPYC" in spec.get("cpu", "") else "intel"
    guests = []
    for i in range(n):
        host = rng.choice(hosts)
        image = (intel if vendor_of[host] == "intel" else amd)[i % images % (6 if vendor_of[host] == "intel" else 4)]
        guests.append({"name": f"vm-{i:03d}", "cpu": image, "host": host})
    return {"guests": guests}


def fingerprints(quick: bool) -> dict[str, dict]:
    # A fixed folder: the JSON report names the pool file it read.
    work = Path(tempfile.gettempdir()) / "cpusolve-golden"
    work.mkdir(exist_ok=True)
    if True:
        result = {}
        for key, argv in commands(quick, work).items():
            code, text = run_cli(argv)
            result[key] = {"exit": code, "sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text)}
            print(f"{code} {result[key]['sha256'][:12]} {key}", file=sys.stderr)
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["write", "check"])
    ap.add_argument("file")
    ap.add_argument("--quick", action="store_true", help="leave out the 10,000-host pool")
    args = ap.parse_args(argv)
    now = fingerprints(args.quick)
    if args.mode == "write":
        Path(args.file).write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        return 0
    before = json.loads(Path(args.file).read_text())
    bad = [k for k in now if k in before and now[k] != before[k]]
    missing = [k for k in before if k not in now and not (args.quick and k.startswith("big"))]
    for k in bad:
        print(f"DIFFERS: {k}: {before[k]} -> {now[k]}")
    for k in missing:
        print(f"NOT RUN: {k}")
    print(f"{len(now) - len(bad)} of {len(now)} outputs identical")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
