"""The stable JSON schema (``cpusolve-result/1``): sorted keys so output is byte-identical.

The text is exactly ``json.dumps(result.to_dict(), indent=2, sort_keys=True)``, written by
:func:`dumps`: the standard library's indenting encoder is pure Python (its C encoder does
not indent) and a 10,000-host pool's report repeats the same host lists thousands of times,
so lists shared between features (``result.shared_lists``) are formatted once per depth.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

from cpusolve.report.records import Result, shared_lists

INDENT = "  "


def render_json(result: Result) -> str:
    with shared_lists():
        return dumps(result.to_dict()) + "\n"


def dumps(obj) -> str:
    """``json.dumps(obj, indent=2, sort_keys=True)``, with each list object formatted once
    per depth however often it appears."""
    out: list[str] = []
    _encode(obj, 0, out, {})
    return "".join(out)


def _encode(obj, depth: int, out: list[str], memo: dict) -> None:
    if isinstance(obj, str):
        out.append(encode_basestring_ascii(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, (int, float)):
        out.append(json.dumps(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        inner = "\n" + INDENT * (depth + 1)
        out.append("{")
        for i, key in enumerate(sorted(obj)):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys are strings here, not {type(key).__name__}")
            out.append(("," if i else "") + inner + encode_basestring_ascii(key) + ": ")
            _encode(obj[key], depth + 1, out, memo)
        out.append("\n" + INDENT * depth + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        key = (id(obj), depth)
        hit = memo.get(key)
        if hit is not None and hit[0] is obj:
            out.append(hit[1])
            return
        part: list[str] = []
        inner = "\n" + INDENT * (depth + 1)
        part.append("[")
        for i, item in enumerate(obj):
            part.append(("," if i else "") + inner)
            _encode(item, depth + 1, part, memo)
        part.append("\n" + INDENT * depth + "]")
        text = "".join(part)
        memo[key] = (obj, text)  # holding obj keeps its id unique
        out.append(text)
    else:
        raise TypeError(f"cannot write {type(obj).__name__} as JSON")
