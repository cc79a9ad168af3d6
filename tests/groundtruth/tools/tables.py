"""Markdown tables of what the guest reported, from a recording (boot.py's JSON).

    python tools/tables.py linux-6.12-tcg.json > /tmp/t.md
Stdlib only.  The abbreviations are listed by --legend.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

ABBREV = (
    ("Clear CPU buffers attempted, no microcode", "VERW tried, no ucode"),
    ("SMT Host state unknown", "SMT host ?"),
    ("SMT vulnerable", "SMT vuln"),
    ("SMT disabled", "SMT off"),
    ("untrained return thunk", "untrained ret"),
    ("Dependent on hypervisor status", "hypervisor-dependent"),
    ("no microcode", "no ucode"),
    ("No microcode", "No ucode"),
    ("Mitigation: ", "M: "),
    ("Vulnerable: ", "V: "),
    ("Unknown: ", "U: "),
    ("Not affected", "NA"),
    ("Vulnerable", "V"),
)


def ab(text: str | None) -> str:
    if text is None:
        return "–"
    for a, b in ABBREV:
        text = text.replace(a, b)
    return text


def smp_code(smp: str | None) -> str:
    if smp is None:
        return "1"
    if "threads=2" in smp:
        return "1c×2t"
    if "cores=2" in smp:
        return "2c×1t"
    return smp


def spectre_v2_parts(text: str) -> dict[str, str]:
    parts = [p.strip() for p in text.split(";")]
    out = {"mode": ab(parts[0])}
    for p in parts[1:]:
        k, _, v = p.partition(":")
        out[k.strip() if v else p] = v.strip() if v else ""
    return out


COLUMNS = (
    "config", "smp", "f/m/s", "Spectre v2", "BHI", "STIBP", "return thunk", "Retbleed", "SRSO",
    "MDS", "TAA", "MMIO", "TSA", "ITS", "GDS", "RFDS", "SMT (thr/active/control)",
)
CONCISE = (
    "config", "smp", "f/m/s", "Spectre v2", "BHI", "return thunk", "Retbleed", "SRSO",
    "MDS", "TAA", "MMIO", "TSA", "SMT (thr/active/control)",
)


def row(r: dict) -> list[str]:
    v = r["vulnerabilities"]
    s2 = spectre_v2_parts(v.get("spectre_v2", ""))
    rt = r["summary"]["return_thunk"]
    sm = r["summary"]
    fms = f"{r['family']:#x}/{r['model']:#x}/{r['stepping']}"
    cpu = f"`{r['cpu']}`" + (f" (≈`{r['substitute_for']}`)" if r.get("substitute_for") else "")
    return [
        cpu,
        smp_code(r.get("smp")),
        fms,
        s2["mode"],
        s2.get("BHI", "–"),
        s2.get("STIBP", "–"),
        rt.removesuffix("_return_thunk") if rt else "(default)",
        ab(v.get("retbleed")),
        ab(v.get("spec_rstack_overflow")),
        ab(v.get("mds")),
        ab(v.get("tsx_async_abort")),
        ab(v.get("mmio_stale_data")),
        ab(v.get("tsa")),
        ab(v.get("indirect_target_selection")),
        ab(v.get("gather_data_sampling")),
        ab(v.get("reg_file_data_sampling")),
        f"{sm['threads_per_core']}/{sm['smt_active']}/{sm['smt_control']}",
    ]


def table(runs: list[dict], columns=COLUMNS) -> str:
    idx = [COLUMNS.index(c) for c in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in runs:
        cells = row(r)
        lines.append("| " + " | ".join(cells[i].replace("|", "\\|") for i in idx) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("recording")
    ap.add_argument("--group", action="append", help="only these groups (models, smt, family, tsx, flags)")
    ap.add_argument("--legend", action="store_true")
    ap.add_argument("--wide", action="store_true", help="also STIBP, ITS, GDS, RFDS")
    ap.add_argument("--level", default="####", help="markdown heading of each group")
    a = ap.parse_args(argv)
    if a.legend:
        print("\n".join(f"- `{b}` = {a_}" for a_, b in ABBREV))
        return 0
    d = json.load(open(a.recording))
    groups = a.group or ["models", "smt", "family", "tsx", "flags"]
    for g in groups:
        runs = [r for r in d["runs"] if g in r.get("groups", [])]
        if not runs:
            continue
        print(f"\n{a.level} {g}\n")
        print(table(runs, COLUMNS if a.wide else CONCISE))
        refused = [r for r in d["refused"] if g in r.get("groups", [])]
        if refused:
            names = list(dict.fromkeys(f"`{r['cpu']}`" + (f" -smp {r['smp']}" if r.get("smp") else "")
                                       for r in refused))
            errs = sorted({re.sub(r"'[^']*'", "'…'", r["error"]) for r in refused})
            print("\nrefused: " + ", ".join(names) + " (" + "; ".join(errs) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
