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

Schema 1's text is exactly ``json.dumps(doc, indent=2, sort_keys=True)``, written by
:func:`dumps` (schema 2's the same but for the one-line scalar lists): the standard
library's indenting encoder is pure Python (its C encoder does not indent) and a report
repeats the same lists, so each shared list object is formatted once per depth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii

from cpusolve.report.records import SCHEMA_2, HostSets, Result, numbered_host_sets, shared_lists

INDENT = "  "


def render_json(result: Result, schema: int = 2, chunks: JsonChunks | None = None) -> str:
    """The report's text; ``chunks`` holds the text of its first domains, written while
    the others were solved (the rest are written here)."""
    if chunks is not None and chunks.schema == schema and chunks.covers(result):  # else: as if none
        return chunks.render(result)
    return _document(result, schema)


def _document(result: Result, schema: int, sets: HostSets | None = None, domains: str | None = None) -> str:
    """The report's text; ``domains``: the text of its domains' list, written already
    (schema 2: with the host sets of ``sets``, which numbers what follows them too)."""
    if schema == 2:
        with numbered_host_sets(sets) as sets:
            doc = result.to_dict(domains=domains is None)
        if domains is not None:
            doc["domains"] = _Raw(domains)
        # each host set on one line, one C encoder call a set (a fleet's report names tens
        # of thousands: the generic path costs several times more per set)
        doc.update(schema=SCHEMA_2, hosts=sets.counts, host_sets=_Raw(_list_text(list(map(_flat, sets.sets)), 1)))
        return dumps(doc, flat_scalars=True) + "\n"
    with shared_lists():
        doc = result.to_dict(domains=domains is None)
    if domains is not None:
        doc["domains"] = _Raw(domains)
    return dumps(doc) + "\n"


class _Local(int):
    """A host-set number of one chunk's own numbering, written as ``\\x00n\\x00`` (a NUL
    never appears in JSON text: strings escape it) so that the chunks' numbers can be
    renumbered when they are joined."""


@dataclass(frozen=True)
class Fragment:
    """The text of some domains, as the report's ``domains`` list holds them, with the host
    sets they name in the fragment's own numbering (schema 2; schema 1 has none) and, per
    domain, the distinct numbers it names in the order it first names them."""

    texts: tuple[str, ...]
    sets: tuple[tuple[str, ...], ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)
    naming: tuple[tuple[int, ...], ...] = ()


class _NamingSets(HostSets):
    """HostSets that also record the numbers handed out, in order (one domain's naming)."""

    def __init__(self, marker: type) -> None:
        super().__init__(marker)
        self.named: list[int] = []

    def number(self, refs) -> int:
        n = super().number(refs)
        self.named.append(n)
        return n


class JsonChunks:
    """A report's domains written chunk by chunk, where the domains are solved.

    Schema 2 numbers host sets in the order the report first names them, which ties every
    domain's text to the domains before it.  So each chunk is written with its own numbers
    (:meth:`fragment`, in whichever process made its reports), and when its domains are
    joined in domain order (:meth:`add`, :meth:`add_domain`, :meth:`render`) each domain's
    sets are numbered in its own order of first naming: exactly the numbers one pass over
    the whole report gives, whichever domains a chunk held.  The text is byte-identical to
    :func:`render_json`'s (tests compare the two).
    """

    def __init__(self, schema: int = 2) -> None:
        self.schema = schema
        self._results: list = []
        self._texts: list[str] = []
        self._sets = HostSets()
        #: id(fragment) -> (fragment, its own numbers -> this report's, as text); the
        #: fragment is held so that its id stays unique
        self._numbers: dict[int, tuple[Fragment, dict[int, str]]] = {}

    def fragment(self, results) -> Fragment:
        """The text of ``results`` (DomainResults in order), in this chunk's own numbering."""
        memo: dict = {}
        if self.schema == 2:
            sets = _NamingSets(marker=_Local)
            docs, naming = [], []
            with numbered_host_sets(sets):
                for d in results:
                    docs.append(d.to_dict())
                    naming.append(tuple(dict.fromkeys(map(int, sets.named))))
                    sets.named.clear()
            texts = tuple(_text(doc, memo, True) for doc in docs)
            return Fragment(texts, tuple(tuple(s) for s in sets.sets), sets.counts, tuple(naming))
        with shared_lists():
            return Fragment(tuple(_text(d.to_dict(), memo, False) for d in results))

    def add(self, results, fragment: Fragment) -> None:
        """The next chunk of the report's domains (in domain order) and its text;
        ``results`` None: only the text (:meth:`render_written` writes the report)."""
        if results is not None:
            self._results.extend(results)
        for k in range(len(fragment.texts)):
            self.add_domain(fragment, k)

    def add_domain(self, fragment: Fragment, k: int, result=None) -> None:
        """The next domain of the report (in domain order): the ``k``-th of ``fragment``;
        ``result`` its record, where the report is rendered from records."""
        if result is not None:
            self._results.append(result)
        text = fragment.texts[k]
        if not fragment.sets:
            self._texts.append(text)
            return
        hit = self._numbers.get(id(fragment))
        if hit is None or hit[0] is not fragment:
            hit = self._numbers[id(fragment)] = (fragment, {})
        numbers = hit[1]
        for n in fragment.naming[k]:
            if n not in numbers:
                numbers[n] = str(self._sets.number_names(fragment.sets[n], fragment.counts))
        if "\x00" not in text:
            self._texts.append(text)
            return
        parts = text.split("\x00")
        parts[1::2] = [numbers[int(p)] for p in parts[1::2]]
        self._texts.append("".join(parts))

    def covers(self, result: Result) -> bool:
        """Whether chunks were added and they are the first domains of ``result``."""
        done = self._results
        if not 0 < len(done) <= len(result.domains):
            return False
        return all(a is b for a, b in zip(done, result.domains[:len(done)], strict=True))

    def render(self, result: Result) -> str:
        rest = result.domains[len(self._results):]
        if rest:
            self.add(rest, self.fragment(rest))
        return self.render_written(result)

    def render_written(self, head: Result) -> str:
        """The report of every domain added, around the rest of ``head`` (its source,
        requirements...; its ``domains`` are not read: engine.solve.solve_written)."""
        return _document(head, self.schema, self._sets, _list_text(self._texts, 1))


class _Raw(str):
    """Text written as it is (the domains' list, written chunk by chunk)."""


def _text(doc: dict, memo: dict, flat: bool) -> str:
    """One domain's text, as the report's ``domains`` list holds it (depth 2)."""
    out: list[str] = []
    _encode(doc, 2, out, memo, flat)
    return "".join(out)


def _list_text(texts: list[str], depth: int) -> str:
    """A list of items already written, as :func:`_encode` writes a list at ``depth``."""
    if not texts:
        return "[]"
    inner = ",\n" + INDENT * (depth + 1)
    return "[\n" + INDENT * (depth + 1) + inner.join(texts) + "\n" + INDENT * depth + "]"


def dumps(obj, flat_scalars: bool = False) -> str:
    """``json.dumps(obj, indent=2, sort_keys=True)``, with each list object formatted once
    per depth however often it appears.  ``flat_scalars`` (schema 2) writes a list of
    strings and numbers on one line, as ``json.dumps`` would without indent."""
    out: list[str] = []
    _encode(obj, 0, out, {}, flat_scalars)
    return "".join(out)


_SCALARS = (str, int, float, bool, type(None))
#: the standard library's C encoder, as json.dumps(obj) without indent uses it: a list of
#: scalars on one line, ", " between items
_flat = json.JSONEncoder().encode


def _encode(obj, depth: int, out: list[str], memo: dict, flat: bool = False) -> None:
    if type(obj) is dict:
        _encode_dict(obj, depth, out, memo, flat)
    elif type(obj) is _Raw:
        out.append(obj)
    elif isinstance(obj, str):
        out.append(encode_basestring_ascii(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif type(obj) is int:
        out.append(int.__repr__(obj))  # what json writes for an int, without a dumps() call
    elif type(obj) is _Local:
        out.append(f"\x00{int.__repr__(obj)}\x00")
    elif isinstance(obj, (int, float)):
        out.append(json.dumps(obj))
    elif isinstance(obj, dict):
        _encode_dict(obj, depth, out, memo, flat)
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        key = (id(obj), depth)
        hit = memo.get(key)
        if hit is not None and hit[0] is obj:
            out.append(hit[1])
            return
        if flat and all(isinstance(item, _SCALARS) and type(item) is not _Local for item in obj):
            text = _flat(obj)
        else:
            inner = "\n" + INDENT * (depth + 1)
            part: list[str] = ["["]
            for i, item in enumerate(obj):
                part.append(("," if i else "") + inner)
                _encode(item, depth + 1, part, memo, flat)
            part.append("\n" + INDENT * depth + "]")
            text = "".join(part)
        memo[key] = (obj, text)  # holding obj keeps its id unique
        out.append(text)
    else:
        raise TypeError(f"cannot write {type(obj).__name__} as JSON")


#: per depth, key -> the text before a member's value (the newline, indent and key; with
#: the comma before it, and without for the first member): a report repeats the same keys
#: at the same depths hundreds of thousands of times
_PREFIX: list[dict[str, tuple[str, str]]] = []
_PREFIX_LIMIT = 1 << 12
#: per depth, the text that closes a dict
_CLOSE: list[str] = []


def _prefixes(depth: int) -> dict[str, tuple[str, str]]:
    while len(_PREFIX) <= depth:
        _PREFIX.append({})
        _CLOSE.append("\n" + INDENT * (len(_CLOSE)) + "}")
    return _PREFIX[depth]


def _encode_dict(obj: dict, depth: int, out: list[str], memo: dict, flat: bool) -> None:
    """A dict, its string, int and null members written here (most members are)."""
    if not obj:
        out.append("{}")
        return
    out.append("{")
    prefixes = _prefixes(depth)
    first = True
    for key in sorted(obj):
        pair = prefixes.get(key)
        if pair is None:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys are strings here, not {type(key).__name__}")
            if len(prefixes) > _PREFIX_LIMIT:
                prefixes.clear()
            text = "\n" + INDENT * (depth + 1) + encode_basestring_ascii(key) + ": "
            pair = prefixes[key] = (text, "," + text)
        out.append(pair[0] if first else pair[1])
        first = False
        value = obj[key]
        kind = type(value)
        if kind is str:  # the commonest members, written without a call
            out.append(encode_basestring_ascii(value))
        elif value is None:
            out.append("null")
        elif kind is int:
            out.append(int.__repr__(value))
        else:
            _encode(value, depth + 1, out, memo, flat)
    out.append(_CLOSE[depth])
