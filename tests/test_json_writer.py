"""The JSON writer is exactly ``json.dumps(indent=2, sort_keys=True)``, only faster."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cpusolve.api import solve
from cpusolve.report.records import shared_lists
from cpusolve.writers import render
from cpusolve.writers.json_out import dumps

ROOT = Path(__file__).resolve().parents[1]

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, derandomize=True, database=None)
@given(values)
def test_same_text_as_the_standard_library(value):
    assert dumps(value) == json.dumps(value, indent=2, sort_keys=True)


def test_a_list_shared_at_two_depths_is_written_at_each():
    shared = [{"name": "h1", "count": 1}, {"name": "h\u00e9", "count": 2}]
    value = {"a": shared, "b": [shared, {"c": shared}], "d": shared}
    assert dumps(value) == json.dumps(value, indent=2, sort_keys=True)


def test_every_example_report_matches_json_dumps():
    examples = sorted((ROOT / "examples").glob("*.json")) + [ROOT / "examples" / "fleet" / "pool.json"]
    for ex in examples:
        result = solve(str(ex))
        with shared_lists():
            expected = json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n"
        assert render(result, "json", 1) == expected, ex.name
        v2 = json.loads(render(result, "json"))
        assert v2["schema"] == "cpusolve-result/2"
        assert expand(v2) == json.loads(expected), ex.name


def expand(doc: dict) -> dict:
    """Schema 2 back to schema 1: every host-set index where version 1 has host objects."""
    sets, counts = doc["host_sets"], doc["hosts"]

    def refs(n: int) -> list[dict]:
        return [{"name": h, "count": counts[h]} for h in sets[n]]

    def walk(obj, key=None):
        if isinstance(obj, dict):
            return {k: walk(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if key in HOST_KEYS and isinstance(obj, int) and not isinstance(obj, bool):
            return refs(obj)
        return obj

    out = walk({k: v for k, v in doc.items() if k not in ("hosts", "host_sets")})
    out["schema"] = "cpusolve-result/1"
    return out


#: where schema 2 puts a host-set index (README "Outputs")
HOST_KEYS = {"hosts", "lacking"}


def test_schema_2_names_each_host_list_once_and_is_a_tenth_on_a_fleet():
    """A generated 1,000-host pool: version 2 expands back to version 1 exactly, no host
    list appears twice in ``host_sets``, and the text is far smaller."""
    from .benchdata import genpool

    result = solve(genpool().generate(1000, 60, 100, seed=2))
    v1, v2 = render(result, "json", 1), render(result, "json")
    doc = json.loads(v2)
    assert expand(doc) == json.loads(v1)
    assert len({tuple(s) for s in doc["host_sets"]}) == len(doc["host_sets"])
    assert len(v2) * 4 < len(v1), (len(v2), len(v1))


def test_chunked_report_is_the_one_pass_report():
    """writers.json_out.JsonChunks (the text -j's processes write as they solve): any
    chunking, both schemas, gives render_json's text byte for byte, and a chunk's host-set
    numbers are its own until it is joined."""
    from cpusolve.api import load_pool
    from cpusolve.writers.json_out import JsonChunks, render_json

    from .benchdata import genpool

    result = solve(load_pool(genpool().generate_diverse(n_hosts=200, n_domains=40, seed=11)))
    doms = result.domains
    for schema in (1, 2):
        whole = render_json(result, schema)
        for size in (1, 3, 17, len(doms)):
            chunks = JsonChunks(schema)
            parts = [doms[i:i + size] for i in range(0, len(doms), size)]
            fragments = [chunks.fragment(p) for p in parts]
            if schema == 2 and size == 3:
                # a later chunk numbers its sets from 0, as if it were first (every domain
                # names its hosts' set)
                assert fragments[-1].sets and "\x000\x00" in "".join(fragments[-1].texts)
            for p, f in zip(parts[:-1], fragments[:-1], strict=True):  # the last: left to render
                chunks.add(p, f)
            assert render_json(result, schema, chunks) == whole, (schema, size)
        # chunks of another report's domains are not used
        other = JsonChunks(schema)
        other.add(doms[1:2], other.fragment(doms[1:2]))
        assert render_json(result, schema, other) == whole


def test_chunks_of_scattered_domains_joined_domain_by_domain_are_the_one_pass_report():
    """-j hands out runs of alike domains (engine.parallel.kindred_order), so a chunk holds
    domains from all over the report: written in any grouping and joined one domain at a
    time in domain order (JsonChunks.add_domain), both schemas give render_json's text."""
    import random

    from cpusolve.api import load_pool
    from cpusolve.domains.graph import domains
    from cpusolve.engine.parallel import kindred_order
    from cpusolve.writers.json_out import JsonChunks, render_json

    from .benchdata import genpool

    pool = load_pool(genpool().generate_diverse(n_hosts=200, n_domains=40, seed=13))
    result = solve(pool)
    doms = result.domains
    rng = random.Random(13)
    shuffled = list(range(len(doms)))
    rng.shuffle(shuffled)
    orders = {"kindred": kindred_order(domains(pool)), "shuffled": shuffled}
    assert orders["kindred"] != list(range(len(doms)))  # the test scatters domains
    for schema in (1, 2):
        whole = render_json(result, schema)
        for name, order in orders.items():
            for size in (1, 4, 15):
                chunks = JsonChunks(schema)
                where = {}
                for lo in range(0, len(order), size):
                    picked = order[lo:lo + size]
                    fragment = chunks.fragment([doms[i] for i in picked])
                    where.update({i: (fragment, k) for k, i in enumerate(picked)})
                for i in range(len(doms)):
                    chunks.add_domain(*where[i], doms[i])
                assert render_json(result, schema, chunks) == whole, (schema, name, size)
