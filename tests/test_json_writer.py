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
        assert render(result, "json") == expected, ex.name
