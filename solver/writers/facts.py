"""A host fact file (``cpusolve-facts/1``, what ``cpusolve probe`` writes) as text."""

from __future__ import annotations

import json


def render_facts(facts: dict) -> str:
    return json.dumps(facts, indent=2) + "\n"
