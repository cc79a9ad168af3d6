"""The FINDINGS.md key table: the SMT and family runs with their one-vCPU baselines."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import tables  # noqa: E402

MODELS = ["Broadwell-v4", "Skylake-Server-v4", "Cascadelake-Server-v5", "Icelake-Server-v6",
          "EPYC-v3", "EPYC-Rome-v2", "EPYC-Milan-v1", "Dhyana-v2",
          "EPYC-Rome-v2,family=25,model=1", "EPYC-Milan-v1,family=23,model=49", "EPYC-Milan-v1,family=25,model=17"]
SMPS = [None, "2,sockets=1,cores=1,threads=2", "2,cores=2,threads=1"]

d = json.load(open(sys.argv[1]))
by = {(r["cpu"], r.get("smp")): r for r in d["runs"]}
runs = [by[(m, s)] for m in MODELS for s in SMPS if (m, s) in by]
print(tables.table(runs, tables.CONCISE))
