"""Verdicts remembered by the feature bits they read.

A rule table's verdict on a CPU view reads a few dozen of the view's ~100 feature bits:
its and/or short-circuit, and which bit is read next depends only on the identity and on
the bits read before it.  So a view that agrees with an earlier one on the identity (and
the rest of the key) and on every bit that evaluation read takes the same path through
every and/or, and gets the same verdict.  A fleet's host kinds and guest answers differ
in microcode and BIOS bits that most rules never reach: the diverse benchmark pool's 385
distinct host silicon readings (after narrowing to the bits any rule reads at all) take 47
paths, and its 1,254 guest answers' bug verdicts fewer than a hundred.

The evaluation is handed a :class:`_Reading` instead of the feature set: it answers ``in``
and nothing else (no iteration, no length, no hash), so an evaluation that read the bits
any other way would fail loudly instead of being remembered by too few of them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

#: paths kept per key before the oldest is dropped (a long-lived scheduler process)
MAX_PATHS = 256


class _Reading:
    """A feature set that answers ``in`` and records each answer."""

    __slots__ = ("_features", "read")
    __hash__ = None  # a view holding one must not key a cache: it would stand for every set

    def __init__(self, features: frozenset[str]) -> None:
        self._features = features
        self.read: dict[str, bool] = {}

    def __contains__(self, name: str) -> bool:
        hit = name in self._features
        self.read[name] = hit
        return hit


class ReadSets(Generic[V]):
    """``compute(features)`` per key, remembered by the bits each evaluation read."""

    def __init__(self) -> None:
        self._paths: dict[Hashable, list[tuple[tuple[tuple[str, bool], ...], V]]] = {}

    def get(self, key: Hashable, features: frozenset[str], compute: Callable[[object], V]) -> V:
        """The verdict for ``features`` under ``key``: an earlier evaluation's, where
        ``features`` agrees with every bit it read, else ``compute``'s on a recording
        reading of ``features`` (``compute`` may only ask ``name in features``)."""
        paths = self._paths.get(key)
        if paths is None:
            paths = self._paths[key] = []
        for reads, value in paths:
            for name, hit in reads:
                if (name in features) is not hit:
                    break
            else:
                return value
        reading = _Reading(features)
        value = compute(reading)
        if len(paths) >= MAX_PATHS:
            del paths[0]
        paths.append((tuple(reading.read.items()), value))
        return value
