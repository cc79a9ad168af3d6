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


def test_the_bugs_a_guest_sees_are_a_full_evaluations_on_every_catalog_model_and_variant():
    """engine.solve.guest_sees shares verdicts between guest views by the bits read: on every
    catalog model, with bits dropped and added at random, as a guest with and without SMT
    and booted with and without a probe fact, its answer is a fresh evaluation's."""
    import dataclasses
    import random

    from cpusolve.encodings.catalog import catalog
    from cpusolve.encodings.cpu import CpuView
    from cpusolve.encodings.rules import KERNELS, load_rules
    from cpusolve.engine.solve import guest_sees

    cat = catalog()
    rng = random.Random("guest-sees")
    names = sorted(cat.guest_features)
    seen = set()
    for m in cat.models:
        base = CpuView(m.vendor, *m.fms, frozenset(m.features & cat.guest_features))
        for _ in range(4):
            feats = set(base.features) - set(rng.sample(sorted(base.features), min(6, len(base.features))))
            feats |= set(rng.sample(names, 4))
            view = dataclasses.replace(base, features=frozenset(feats), smt=rng.random() < 0.5,
                                       boot=frozenset({"msr_ok:PRED_CMD_SBPB"}) if rng.random() < 0.3 else frozenset())
            for kernel in KERNELS:
                full = tuple(b for b, hit in load_rules(kernel).affected(view).items() if hit)
                assert guest_sees(view, kernel) == full, (m.name, kernel, sorted(feats))
                seen.add(full)
    assert len(seen) > 10
