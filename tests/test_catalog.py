"""The catalog: every QEMU model version, aliases resolved, spellings folded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpusolve.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "qemu-x86-models.json"


def test_every_version_present(cat):
    names = {m.name for m in cat.models}
    for n in range(1, 6):
        assert f"Skylake-Server-v{n}" in names
    for name in ("SapphireRapids-v1", "GraniteRapids-v1", "SierraForest-v1", "EPYC-Genoa-v1",
                 "EPYC-Milan-v2", "EPYC-Milan-v3", "EPYC-Turin-v1", "Cascadelake-Server-v5"):
        assert name in names
    assert "Skylake-Server-v6" not in names
    assert len(cat.models) == 104


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present")
def test_catalog_matches_shared_source(cat):
    src = json.loads(SHARED.read_text())
    assert {m["name"] for m in src["models"]} == {m.name for m in cat.models}
    skx = next(m for m in src["models"] if m["name"] == "Skylake-Server-v4")
    assert cat.model("Skylake-Server-v4").features == frozenset(
        f for f in skx["features_kvm"] if not f.startswith("kvm"))


@pytest.mark.parametrize("alias,version", [
    ("Skylake-Server-IBRS", "Skylake-Server-v2"),
    ("Skylake-Server", "Skylake-Server-v1"),
    ("Cascadelake-Server-noTSX", "Cascadelake-Server-v3"),
    ("EPYC-IBPB", "EPYC-v2"),
    ("Haswell-noTSX-IBRS", "Haswell-v4"),
    ("skylake-server-v4", "Skylake-Server-v4"),
])
def test_aliases_resolve_to_versions(cat, alias, version):
    assert cat.model(alias).name == version


@pytest.mark.parametrize("spelling,canonical", [
    ("sse4.1", "sse4.1"), ("sse4-1", "sse4.1"), ("sse4_1", "sse4.1"),
    ("i64", "lm"), ("xd", "nx"), ("pclmuldq", "pclmulqdq"), ("lahf_lm", "lahf-lm"),
    ("sse3", "pni"), ("ffxsr", "fxsr-opt"),
])
def test_spellings_fold(cat, spelling, canonical):
    assert cat.canonical(spelling) == canonical


def test_unknown_names_suggest(cat):
    with pytest.raises(InputError, match="did you mean 'Skylake-Server-v4'"):
        cat.model("Skylake-Server-v44")
    with pytest.raises(InputError, match="md-clear"):
        cat.feature("md-claer")


def test_pseudo_properties_are_not_guest_features(cat):
    for name in ("kvmclock", "kvm-pv-eoi", "vmx-ept"):
        assert name in cat.features and not cat.features[name].guest_visible
    for name in ("check", "enforce", "kvm", "tcg-cpuid", "hv-relaxed", "x-force-features"):
        assert cat.canonical(name) is None


def test_models_carry_identity_and_kvm_view(cat):
    skx = cat.model("Skylake-Server-v4")
    assert (skx.vendor, skx.family, skx.model, skx.stepping) == ("GenuineIntel", 6, 85, 4)
    assert "spec-ctrl" in skx.features and "md-clear" not in skx.features
    assert "x2apic" in skx.features  # KVM default on
    rome = cat.model("EPYC-Rome-v4")
    assert rome.vendor == "AuthenticAMD" and rome.family == 23
    assert "svm" not in rome.features  # kvm_default_props turns svm off


def test_feature_bits_and_dependencies(cat):
    assert cat.features["avx2"].cpuid == (7, 0, "EBX", 5)
    assert cat.features["mds-no"].msr == (0x10A, 5)
    assert ("arch-capabilities",) in cat.features["mds-no"].requires
    assert ("avx2",) in cat.features["avx512f"].requires
    assert ("xsave",) in cat.features["avx512f"].requires
    assert cat.features["avx2"].libvirt == "avx2"
    assert cat.features["lahf-lm"].libvirt == "lahf_lm"


def test_every_model_satisfies_its_dependencies(cat):
    # QEMU applies feature_dependencies when it expands a model, and real CPUs obey the
    # architectural ones, so a shipped model must never violate the catalog's dependencies.
    # One known exception: the 1997 Pentium MMX had MMX before FXSAVE existed; Linux's
    # cpuid-deps.c (mmx needs fxsr) would hide its MMX, which no 64-bit guest cares about.
    violations = {m.name: cat.unmet(m.features) for m in cat.models if cat.unmet(m.features)}
    assert violations == {"pentium-v1": [("mmx", ("fxsr",))]}
    assert ("avx512f", ("avx2",)) in cat.unmet(frozenset({"avx512f", "avx", "xsave", "fxsr", "fpu"}))
    assert cat.unmet(frozenset({"avx512f", "avx2", "avx", "xsave", "fxsr", "fpu"})) == []
