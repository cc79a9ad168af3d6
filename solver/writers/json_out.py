"""The stable JSON schema (``cpusolve-result/1``): sorted keys so output is byte-identical."""

from __future__ import annotations

import json

from cpusolve.result import Result


def render_json(result: Result) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n"
