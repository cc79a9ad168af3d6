"""The stable JSON schemas: sorted keys, so output is byte-identical.

``cpusolve-result/2`` (the default) names every host once and every host list once: the
top-level ``hosts`` maps each host name to its machine count, ``host_sets`` is a list of
host-name lists, and wherever version 1 has a list of ``{name, count}`` objects (a
domain's ``hosts``, a shortfall's ``lacking``, a conflict's or a protection line's
``hosts``, a safety cost's ``hosts``, a better model's ``lacking``) version 2 has the index
of that list in ``host_sets``.  A fleet's domains name the same lacking hosts for dozens of
features, so this is what keeps a 10,000-host report readable by a program.
Lists of strings and numbers are written on one line.  ``cpusolve-result/1``
(``result.to_dict()``, ``--json-schema 1``) is kept for one release.

The text is exactly ``json.dumps(doc, indent=2, sort_keys=True)``, written by :func:`dumps`:
the standard library's indenting encoder is pure Python (its C encoder does not indent) and
a report repeats the same lists, so each shared list object is formatted once per depth.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

from cpusolve.report.records import Result, shared_lists

INDENT = "  "


SCHEMAS = (1, 2)
SCHEMA_2 = "cpusolve-result/2"


def render_json(result: Result, schema: int = 2) -> str:
    with shared_lists():
        doc = result.to_dict()
        if schema == 2:
            return dumps(by_reference(doc), flat_scalars=True) + "\n"
        return dumps(doc) + "\n"


def _is_refs(obj) -> bool:
    return (isinstance(obj, list) and bool(obj)
            and all(type(h) is dict and h.keys() == {"name", "count"} for h in obj))


def by_reference(doc: dict) -> dict:
    """A version 1 document (fresh from ``to_dict()``) as version 2, changed in place: host
    lists replaced by their index in ``host_sets``, numbered in order of first appearance
    (so the same report always numbers them alike)."""
    counts: dict[str, int] = {}
    sets: list[list[str]] = []
    index: dict[tuple[str, ...], int] = {}
    by_id: dict[int, tuple[list, int]] = {}  # the shared list objects of shared_lists()

    def ref(refs: list) -> int:
        hit = by_id.get(id(refs))
        if hit is not None and hit[0] is refs:
            return hit[1]
        names = tuple(h["name"] for h in refs)
        n = index.get(names)
        if n is None:
            n = index[names] = len(sets)
            sets.append(list(names))
            for h in refs:
                counts[h["name"]] = h["count"]
        by_id[id(refs)] = (refs, n)
        return n

    def walk(obj) -> None:  # in place: ``doc`` is a fresh tree (only host lists are shared)
        if isinstance(obj, dict):
            for k, v in obj.items():
                if _is_refs(v):
                    obj[k] = ref(v)
                elif isinstance(v, (dict, list)):
                    walk(v)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                if _is_refs(v):
                    obj[i] = ref(v)
                elif isinstance(v, (dict, list)):
                    walk(v)

    out = {k: v for k, v in doc.items() if k != "schema"}
    walk(out)
    out["schema"] = SCHEMA_2
    out["hosts"] = counts
    out["host_sets"] = sets
    return out


def dumps(obj, flat_scalars: bool = False) -> str:
    """``json.dumps(obj, indent=2, sort_keys=True)``, with each list object formatted once
    per depth however often it appears.  ``flat_scalars`` (schema 2) writes a list of
    strings and numbers on one line, as ``json.dumps`` would without indent."""
    out: list[str] = []
    _encode(obj, 0, out, {}, flat_scalars)
    return "".join(out)


_SCALARS = (str, int, float, bool, type(None))


def _encode(obj, depth: int, out: list[str], memo: dict, flat: bool = False) -> None:
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
            _encode(obj[key], depth + 1, out, memo, flat)
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
        if flat and all(isinstance(item, _SCALARS) for item in obj):
            for item in obj:
                _encode(item, depth + 1, part, memo)
            text = "[" + ", ".join(part) + "]"
        else:
            inner = "\n" + INDENT * (depth + 1)
            part.append("[")
            for i, item in enumerate(obj):
                part.append(("," if i else "") + inner)
                _encode(item, depth + 1, part, memo, flat)
            part.append("\n" + INDENT * depth + "]")
            text = "".join(part)
        memo[key] = (obj, text)  # holding obj keeps its id unique
        out.append(text)
    else:
        raise TypeError(f"cannot write {type(obj).__name__} as JSON")
