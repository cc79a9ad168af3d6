"""The oracle as a second backend: the engine's optimizer run on the same problems with
Z3 replaced by tests/oracle.py's search (which reads the problem's host kinds and
requirements, never its formulas).  Every answer the oracle backend gives must pass the
product's checker (the two protection models agree on it), and Z3's optimum must have at
least as many features."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from cpusolve.api import load_pool
from cpusolve.domains.graph import domains
from cpusolve.encodings.catalog import HINT_BITS, catalog
from cpusolve.engine.optimize import optimize
from cpusolve.verify.checker import check_answer

from .oracle import OracleBackend, score
from .test_properties import pools

CAT = catalog()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def compare(pool) -> dict[str, int]:
    seen = {"both": 0, "oracle-none": 0}
    req = pool.requirements
    if req.policy != "strict":
        return seen
    for dom in domains(pool):
        vendors = {t.vendor for t in dom.types}
        if len(vendors) != 1:
            continue
        vendor = vendors.pop()
        oracle = optimize(CAT, vendor, dom.types, req, backend=OracleBackend())
        if oracle.status != "sat":
            seen["oracle-none"] += 1
            continue
        assert check_answer(CAT, dom.types, req, oracle.guest) == [], (oracle.guest, [t.origin for t in dom.types])
        z3 = optimize(CAT, vendor, dom.types, req)
        assert z3.status == "sat", f"the oracle found {oracle.guest}, Z3 {z3.status}"
        assert len(z3.features - HINT_BITS) >= score(oracle.features), (z3.guest, oracle.guest)
        seen["both"] += 1
    return seen


def test_oracle_backend_on_the_examples():
    seen = {"both": 0, "oracle-none": 0}
    for path in sorted(EXAMPLES.glob("*.json")):
        for k, v in compare(load_pool(str(path))).items():
            seen[k] += v
    assert seen["both"] >= 4, seen  # the examples' solved domains are found by both


@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(pools())
def test_oracle_backend_on_random_pools(data):
    compare(load_pool(json.loads(json.dumps(data))))
