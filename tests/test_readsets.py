"""Verdicts remembered by the bits they read (encodings.readsets): an earlier verdict is
given only to a set that agrees on every bit its evaluation read, and an evaluation that
reads a set other than by ``in`` fails instead of being remembered by too few bits."""

from __future__ import annotations

import pytest

from cpusolve.encodings.readsets import ReadSets


def _rule(features) -> str:
    """md-clear decides, and only where it is there does flush-l1d count (short-circuit)."""
    if "md-clear" not in features:
        return "no md-clear"
    return "both" if "flush-l1d" in features else "md-clear only"


def test_a_verdict_is_shared_only_by_sets_that_agree_on_what_it_read():
    memo: ReadSets[str] = ReadSets()
    calls = []

    def compute(features):
        calls.append(1)
        return _rule(features)

    assert memo.get("k", frozenset({"ssbd"}), compute) == "no md-clear"
    assert memo.get("k", frozenset({"flush-l1d", "avx"}), compute) == "no md-clear"  # read md-clear only
    assert len(calls) == 1
    assert memo.get("k", frozenset({"md-clear"}), compute) == "md-clear only"
    assert memo.get("k", frozenset({"md-clear", "flush-l1d"}), compute) == "both"
    assert memo.get("k", frozenset({"md-clear", "avx"}), compute) == "md-clear only"
    assert len(calls) == 3
    assert memo.get("other key", frozenset({"ssbd"}), compute) == "no md-clear"  # keys do not share
    assert len(calls) == 4


@pytest.mark.parametrize("misuse", [len, list, hash, lambda f: f & {"md-clear"}, lambda f: {f: 1}])
def test_an_evaluation_that_reads_the_set_otherwise_fails(misuse):
    memo: ReadSets[object] = ReadSets()
    with pytest.raises(TypeError):
        memo.get("k", frozenset({"md-clear"}), misuse)
