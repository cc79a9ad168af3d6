"""Compare two recordings run by run (same -cpu string and -smp): identity,
flags, bugs, vulnerabilities, QEMU warnings and the dmesg lines the older
recording's filter keeps.  Stdlib only.

    python tools/compare.py OLD.json NEW.json            # e.g. the first 6.1 recording vs the new one
    python tools/compare.py linux-6.1-tcg.json linux-6.12-tcg.json --kernels   # 6.1 vs 6.12
"""
from __future__ import annotations

import argparse
import json
import re
import sys

OLD_FILTER = (
    "mitigat|vulnerab|spectre|speculat|retbleed|microcode|mmio stale|tsx|vmscape|smpboot: cpu0",
    "(^| |/)(mds|taa|srbds|gds|rfds|srso|l1tf|its|tsa|ibrs|ibpb|ssb|bhi|bugs)( |:)",
)


def key(r: dict) -> tuple[str, str | None]:
    return (r["cpu"], r.get("smp"))


def old_filtered(lines: list[str], patterns=OLD_FILTER) -> list[str]:
    return [ln for ln in lines if any(re.search(p, ln, re.I) for p in patterns)]


def diff_runs(a: dict, b: dict, kernels: bool) -> list[str]:
    out = []
    for f in ("vendor", "family", "model", "stepping", "model_name"):
        if a.get(f) != b.get(f):
            out.append(f"{f}: {a.get(f)!r} -> {b.get(f)!r}")
    fa, fb = set(a["flags"]), set(b["flags"])
    if fa != fb:
        out.append(f"flags: only old {sorted(fa - fb)}, only new {sorted(fb - fa)}")
    ba, bb = set(a["bugs"]), set(b["bugs"])
    if ba != bb:
        out.append(f"bugs: only old {sorted(ba - bb)}, only new {sorted(bb - ba)}")
    va, vb = a["vulnerabilities"], b["vulnerabilities"]
    for k in sorted(va.keys() | vb.keys()):
        if va.get(k) != vb.get(k):
            out.append(f"vulnerabilities/{k}: {va.get(k)!r} -> {vb.get(k)!r}")
    wa, wb = list(dict.fromkeys(a["qemu_warnings"])), list(dict.fromkeys(b["qemu_warnings"]))
    if wa != wb:
        out.append(f"qemu_warnings: only old {sorted(set(wa) - set(wb))}, only new {sorted(set(wb) - set(wa))}")
    da = a["dmesg"] if kernels else old_filtered(a["dmesg"])
    db = b["dmesg"] if kernels else old_filtered(b["dmesg"])
    def strip(lines):
        return [re.sub(r"\(\d+\.\d+ BogoMIPS\)", "(BogoMIPS)", ln) for ln in lines]

    da, db = strip(da), strip(db)
    if da != db:
        out.append(f"dmesg: only old {[x for x in da if x not in db]}, only new {[x for x in db if x not in da]}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--kernels", action="store_true",
                    help="compare two kernels: every dmesg line, not the old filter's")
    ap.add_argument("--ignore", action="append", default=[], help="a diff prefix to leave out (e.g. flags)")
    a = ap.parse_args(argv)
    old, new = json.load(open(a.old)), json.load(open(a.new))
    ro, rn = {key(r): r for r in old["runs"]}, {key(r): r for r in new["runs"]}
    refo = {(r["cpu"], r.get("smp")): r for r in old["refused"]}
    refn = {(r["cpu"], r.get("smp")): r for r in new["refused"]}
    same = differ = 0
    for k in [k for k in ro if k in rn]:
        d = [x for x in diff_runs(ro[k], rn[k], a.kernels) if not any(x.startswith(i) for i in a.ignore)]
        if d:
            differ += 1
            print(f"* {k[0]}" + (f" -smp {k[1]}" if k[1] else ""))
            for x in d:
                print(f"    {x}")
        else:
            same += 1
    for k in ro.keys() - rn.keys():
        print(f"- only in old runs: {k}" + (f" (new: refused: {refn[k]['error']})" if k in refn else ""))
    only_new = [k for k in rn if k not in ro]
    for k in refo:
        if k in rn:
            print(f"+ refused in old, runs in new: {k}")
    print(f"{same} identical, {differ} differ, {len(only_new)} only in new", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
