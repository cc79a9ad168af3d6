"""Fact-file readers on real files (tests/data/facts/SOURCE.md says where each came from)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cpusolve.encodings.catalog import catalog
from cpusolve.errors import InputError
from cpusolve.inputs.facts import FORMATS, FactFile, read_fact_file
from cpusolve.inputs.facts.common import FeatureNames
from cpusolve.inputs.facts.libvirt_models import libvirt_model_features
from cpusolve.inputs.facts.libvirt_xml import expand

FACTS = Path(__file__).parent / "data" / "facts"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CPUTESTDATA = SHARED / "libvirt-cputestdata"
needs_shared = pytest.mark.skipif(not CPUTESTDATA.is_dir(), reason=f"{CPUTESTDATA} not present")


def canonical(spellings) -> set[str]:
    cat = catalog()
    return {cat.canonical(s) for s in spellings} - {None}


def libvirt_known() -> set[str]:
    """Canonical names libvirt's cpu_map can express (its decodes say nothing about others)."""
    root = ET.parse(SHARED / "libvirt-cpu_map" / "x86_features.xml").getroot()
    return {n for n in canonical(f.get("name") for f in root.iter("feature")) if not n.startswith("vmx-")}


# -- raw CPUID dumps ----------------------------------------------------------------------
def test_cpuid_dump_skylake_sp():
    fact = read_fact_file(FACTS / "x86_64-cpuid-Xeon-Gold-6148.xml")
    assert fact.format == "libvirt-cpuid-dump"
    assert (fact.vendor, fact.fms) == ("GenuineIntel", (6, 85, 4))
    assert {"avx512f", "avx512bw", "avx512vl", "avx512cd", "sse2", "mpx", "clwb"} <= fact.features
    assert "avx512vnni" not in fact.features  # Cascade Lake's, not Skylake-SP's
    # leaf 7 EDX is 0 in this dump: microcode from before the Spectre updates
    assert not {"spec-ctrl", "arch-capabilities", "md-clear"} & fact.features
    assert fact.exposable is False and fact.bugs is None


def test_cpuid_dump_epyc_decodes_msr():
    fact = read_fact_file(FACTS / "x86_64-cpuid-EPYC-7502-32-Core.xml")
    assert (fact.vendor, fact.family, fact.model) == ("AuthenticAMD", 23, 49)
    assert {"ibpb", "amd-ssbd", "sha-ni", "clzero"} <= fact.features
    assert "avx512f" not in fact.features
    # <msr index='0x10a' eax='0x69'/>: bits 0, 3, 5, 6 (KVM's emulated value on this AMD box)
    caps = {n for n in fact.features if catalog().features[n].is_arch_cap}
    assert caps == {"rdctl-no", "skip-l1dfl-vmentry", "mds-no", "pschange-mc-no"}


def test_cpuid_dump_hygon():
    fact = read_fact_file(FACTS / "x86_64-cpuid-Hygon-C86-7185-32-core.xml")
    assert (fact.vendor, fact.family) == ("HygonGenuine", 24)


@needs_shared
def test_every_cpuid_dump_matches_libvirt_signature():
    sigs = sorted(CPUTESTDATA.glob("x86_64-cpuid-*.sig"))
    assert len(sigs) > 50
    for sig in sigs:
        lines = sig.read_text().splitlines()
        expected = tuple(int(line.split()[1]) for line in lines[1:4])
        assert read_fact_file(sig.with_suffix(".xml")).fms == expected, sig.name


@needs_shared
def test_cpuid_dumps_agree_with_libvirt_host_decodes():
    """Our CPUID decoder and libvirt's, on 61 real hosts, restricted to names libvirt has."""
    known = libvirt_known()
    hosts = sorted(CPUTESTDATA.glob("x86_64-cpuid-*-host.xml"))
    assert len(hosts) > 50
    for host in hosts:
        if host.name == "x86_64-cpuid-Core-i5-4670T-host.xml":
            continue  # libvirt drops TSX on Haswell 06-3c-03 (x86DataFilterTSX); the CPU reports it
        ours = read_fact_file(str(host).replace("-host.xml", ".xml"))
        theirs = read_fact_file(host)
        assert (ours.vendor, ours.fms) == (theirs.vendor, theirs.fms), host.name
        assert ours.features & known == theirs.features & known, host.name


# -- QMP -----------------------------------------------------------------------------------
def test_qmp_static_expansion_false_is_absent():
    fact = read_fact_file(FACTS / "x86_64-cpuid-Xeon-Gold-6148.json")
    assert fact.format == "qemu-qmp-expansion" and fact.exposable
    assert (fact.vendor, fact.fms) == ("GenuineIntel", (6, 85, 4))
    props = json.loads((FACTS / "x86_64-cpuid-Xeon-Gold-6148.json").read_text())["return"]["model"]["props"]
    assert props["pku"] is False and props["avx512f"] is True
    assert "pku" not in fact.features and "rdpid" not in fact.features
    assert {"avx512f", "hypervisor", "pcid"} <= fact.features


def test_qmp_session_with_several_replies():
    fact = read_fact_file(FACTS / "x86_64-cpuid-Cooperlake.json")
    assert fact.fms == (6, 85, 11)
    assert {"avx512-bf16", "avx512vnni", "arch-capabilities"} <= fact.features


def test_qmp_full_expansion_from_this_machine():
    fact = read_fact_file(FACTS / "qemu-7.2-kvm-host-expansion.qmp")
    assert (fact.vendor, fact.fms) == ("AuthenticAMD", (25, 17, 1))
    assert {"sse2", "arch-capabilities", "mds-no", "hypervisor"} <= fact.features
    assert "pni" not in fact.features  # "pni": false: this nested KVM hides SSE3
    assert "check" not in fact.features and "migratable" not in fact.features


def test_qmp_bare_return_object(tmp_path):
    reply = json.loads((FACTS / "x86_64-cpuid-Xeon-Gold-6148.json").read_text())
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(reply["return"]))
    assert read_fact_file(bare).features == read_fact_file(FACTS / "x86_64-cpuid-Xeon-Gold-6148.json").features


def test_qmp_expansion_of_a_named_model_is_refused(tmp_path):
    reply = json.loads((FACTS / "x86_64-cpuid-Xeon-Gold-6148.json").read_text())
    reply["return"]["model"]["name"] = "Skylake-Server"
    path = tmp_path / "named.json"
    path.write_text(json.dumps(reply))
    with pytest.raises(InputError, match="not of 'host'"):
        read_fact_file(path)


@needs_shared
def test_qmp_replies_agree_with_libvirt_decodes():
    """49 real QMP replies: our reading equals libvirt's own host-model decode of them."""
    known = libvirt_known()
    replies = sorted(CPUTESTDATA.glob("x86_64-cpuid-*.json"))
    assert len(replies) > 40
    for reply in replies:
        decoded = reply.with_name(reply.name.replace(".json", "-json.xml"))
        root = ET.parse(decoded).getroot()
        theirs, _ = expand(root.find("model").text, root, FeatureNames(str(decoded)), str(decoded))
        assert read_fact_file(reply).features & known == theirs & known, reply.name


# -- domcapabilities ---------------------------------------------------------------------
def test_domcapabilities_skylake_host_model():
    fact = read_fact_file(FACTS / "qemu_4.2.0-q35.x86_64.xml")
    assert fact.format == "libvirt-domcapabilities" and fact.exposable
    assert fact.vendor == "GenuineIntel"
    model = canonical(libvirt_model_features("Skylake-Client-IBRS"))
    required = {"ss", "vmx", "hypervisor", "tsc-adjust", "clflushopt", "umip", "md-clear", "stibp",
                "arch-capabilities", "ssbd", "xsaves", "pdpe1gb", "invtsc", "skip-l1dfl-vmentry",
                "pschange-mc-no"}
    assert fact.features == model | required
    assert "avx512f" not in fact.features
    # no <signature> in host-model: the identity is unknown, never the model's
    assert not fact.identity_known
    assert any("no <signature>" in n for n in fact.notes)
    assert "Skylake-Client-v2" in fact.custom_models and "Broadwell-v1" in fact.custom_models
    assert "Skylake-Server-v1" not in fact.custom_models and "EPYC-v1" not in fact.custom_models


def test_domcapabilities_disabled_feature_is_removed(tmp_path):
    text = (FACTS / "qemu_4.2.0-q35.x86_64.xml").read_text()
    assert "avx2" in canonical(libvirt_model_features("Skylake-Client-IBRS"))
    edited = tmp_path / "domcaps.xml"
    edited.write_text(text.replace("<feature policy='require' name='ss'/>",
                                   "<feature policy='require' name='ss'/>\n"
                                   "      <feature policy='disable' name='avx2'/>"))
    fact = read_fact_file(edited)
    assert "avx2" not in fact.features and "ss" in fact.features


def test_domcapabilities_epyc_rome_uses_libvirt_model_definition():
    fact = read_fact_file(FACTS / "qemu_9.0.0-q35.x86_64.xml")
    assert fact.vendor == "AuthenticAMD" and not fact.identity_known
    assert "xsaves" not in fact.features  # <feature policy='disable' name='xsaves'/>
    assert {"amd-ssbd", "virt-ssbd", "mds-no", "gds-no", "ssbd", "stibp", "x2apic"} <= fact.features
    # QEMU's EPYC-Rome-v1 has topoext, libvirt's EPYC-Rome does not and host-model does not
    # require it: claiming it from QEMU's definition would be a bit the host never reported.
    assert "topoext" in catalog().model("EPYC-Rome").features
    assert "topoext" not in fact.features
    assert fact.custom_models[:3] == ("486-v1", "pentium-v1", "pentium2-v1")
    assert {"EPYC-v1", "EPYC-v2", "Dhyana-v1", "Westmere-v1"} <= set(fact.custom_models)
    assert "EPYC-Rome-v1" not in fact.custom_models  # usable='no' (blocked by xsaves)


def test_format_comes_from_content_not_name(tmp_path):
    disguised = tmp_path / "host1.json"
    shutil.copy(FACTS / "qemu_4.2.0-q35.x86_64.xml", disguised)
    assert read_fact_file(disguised).format == "libvirt-domcapabilities"


def test_unknown_feature_warns_once_per_spelling(tmp_path, capsys):
    text = (FACTS / "qemu_4.2.0-q35.x86_64.xml").read_text()
    bogus = "<feature policy='require' name='frobnicate'/>\n      "
    path = tmp_path / "dc.xml"
    path.write_text(text.replace("<feature policy='require' name='ss'/>",
                                 bogus + bogus + "<feature policy='require' name='ss'/>"))
    fact = read_fact_file(path)
    err = capsys.readouterr().err
    assert err.count("unknown feature 'frobnicate' ignored") == 1
    assert err.startswith(f"cpusolve: warning: {path}: ")
    assert "ss" in fact.features


# -- capabilities ------------------------------------------------------------------------
def test_capabilities_real_zen5_host(capsys):
    fact = read_fact_file(FACTS / "caps-qemu-real-full.host.xml")
    assert fact.format == "libvirt-capabilities" and not fact.exposable
    assert (fact.vendor, fact.fms) == ("AuthenticAMD", (26, 68, 0))
    assert canonical(libvirt_model_features("Opteron_G3-v1")) <= fact.features  # the model
    assert {"avx512f", "avx512-vp2intersect", "auto-ibrs", "sbpb"} <= fact.features  # listed extras
    assert "microcode version 188760099" in fact.notes
    err = capsys.readouterr().err
    assert "unknown feature 'gmet' ignored" in err
    assert "osxsave" not in err  # known libvirt bit, deliberately not a model feature


def test_capabilities_bare_host_cpu_equals_raw_dump():
    decoded = read_fact_file(FACTS / "x86_64-cpuid-Xeon-Gold-6148-host.xml")
    dump = read_fact_file(FACTS / "x86_64-cpuid-Xeon-Gold-6148.xml")
    assert decoded.format == "libvirt-capabilities"
    assert (decoded.vendor, decoded.fms, decoded.features) == (dump.vendor, dump.fms, dump.features)


# -- /proc/cpuinfo + sysfs -----------------------------------------------------------------
def test_cpuinfo_directory_with_vulnerabilities():
    fact = read_fact_file(FACTS / "this-host")
    assert fact.format == "linux-cpuinfo" and not fact.exposable
    assert (fact.vendor, fact.fms) == ("AuthenticAMD", (25, 17, 1))
    vulns = FACTS / "this-host" / "vulnerabilities"
    expected = {p.name for p in vulns.iterdir() if p.read_text().strip() != "Not affected"}
    assert fact.bugs == frozenset(expected)
    assert "spectre_v2" in fact.bugs and "meltdown" not in fact.bugs
    assert {"sse2", "avx512f", "sha-ni", "avx512vnni", "tsc-deadline", "lahf-lm"} <= fact.features


def test_bare_cpuinfo_has_unknown_bugs(capsys):
    fact = read_fact_file(FACTS / "this-host" / "cpuinfo")
    assert fact.bugs is None
    assert "constant_tsc" not in capsys.readouterr().err  # Linux-only flag: no CPUID bit, no noise


def test_cpuinfo_synthetic_speculation_flags_follow_the_vendor(tmp_path):
    text = (FACTS / "this-host" / "cpuinfo").read_text()
    path = tmp_path / "cpuinfo"
    path.write_text(text.replace(" fsrm", " fsrm ibpb stibp ssbd"))
    amd = read_fact_file(path)
    assert {"ibpb", "amd-stibp"} <= amd.features
    assert "stibp" not in amd.features and "ssbd" not in amd.features  # Intel's bits
    path.write_text(path.read_text().replace("AuthenticAMD", "GenuineIntel"))
    intel = read_fact_file(path)
    assert {"spec-ctrl", "stibp", "ssbd"} <= intel.features and "ibpb" not in intel.features


# -- cpusolve's own fact file ----------------------------------------------------------------
def test_facts_file_roundtrip(tmp_path):
    doc = {"schema": "cpusolve-facts/1", "arch": "x86_64", "vendor": "GenuineIntel", "family": 6,
           "model": 85, "stepping": 7, "model_name": "x", "features": ["sse2", "sse4_1", "arch-capabilities"],
           "exposable": True, "bugs": ["mds"], "kernel": "6.1.0", "source": {"method": "kvm"}}
    path = tmp_path / "h.json"
    path.write_text(json.dumps(doc))
    fact = read_fact_file(path)
    assert fact == FactFile(path=str(path), format="cpusolve-facts", vendor="GenuineIntel", family=6,
                            model=85, stepping=7, features=frozenset({"sse2", "sse4.1", "arch-capabilities"}),
                            bugs=frozenset({"mds"}), exposable=True, notes=fact.notes, kernel="6.1.0")


def test_all_formats_listed():
    assert set(FORMATS) == {"libvirt-domcapabilities", "libvirt-capabilities", "qemu-qmp-expansion",
                            "linux-cpuinfo", "libvirt-cpuid-dump", "cpusolve-facts"}


# -- errors: one line, naming the file --------------------------------------------------------
def bad(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def refused(path: Path, match: str) -> str:
    with pytest.raises(InputError) as info:
        read_fact_file(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert match in message, message
    return message


def test_error_unknown_format(tmp_path):
    refused(bad(tmp_path, "notes.txt", "hello\nthis is not a fact file\n"), "not a host fact file")


def test_error_truncated_xml(tmp_path):
    data = (FACTS / "qemu_9.0.0-q35.x86_64.xml").read_bytes()[:3000]
    refused(bad(tmp_path, "cut.xml", data), "truncated XML")


def test_error_billion_laughs(tmp_path):
    lol = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
           + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
                     for i in range(1, 10))
           + ']>\n<domainCapabilities><arch>&lol9;</arch></domainCapabilities>\n')
    refused(bad(tmp_path, "lol.xml", lol), "DOCTYPE")


def test_error_external_entity(tmp_path):
    xxe = ('<?xml version="1.0"?>\n<!DOCTYPE cpudata [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
           "<cpudata arch='x86'>&x;</cpudata>\n")
    refused(bad(tmp_path, "xxe.xml", xxe), "refused")


def test_error_doctype_hidden_by_utf16(tmp_path):
    xxe = '<!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><cpudata arch="x86">&x;</cpudata>'
    refused(bad(tmp_path, "u16.xml", "\ufeff".encode("utf-16-le") + xxe.encode("utf-16-le")), "DOCTYPE")


def test_error_aarch64_capabilities():
    refused(FACTS / "caps_2.10.0.aarch64.xml", "aarch64")


def test_error_aarch64_cpuinfo(tmp_path):
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"
    refused(bad(tmp_path, "cpuinfo", arm), "aarch64")


def test_error_facts_for_another_arch(tmp_path):
    doc = {"schema": "cpusolve-facts/1", "arch": "s390x", "vendor": "IBM", "family": 0, "model": 0,
           "stepping": 0, "features": []}
    refused(bad(tmp_path, "z.json", json.dumps(doc)), "s390x")


def test_error_binary_garbage(tmp_path):
    refused(bad(tmp_path, "garbage.bin", bytes(range(256)) * 4), "binary data")


def test_error_empty_and_whitespace(tmp_path):
    refused(bad(tmp_path, "empty.xml", "  \n"), "empty file")


def test_error_truncated_json(tmp_path):
    text = (FACTS / "x86_64-cpuid-Xeon-Gold-6148.json").read_text()[:2000]
    refused(bad(tmp_path, "cut.json", text), "truncated JSON")


def test_error_other_json(tmp_path):
    refused(bad(tmp_path, "pool.json", '{"hosts": {}}'), "neither a cpusolve fact file nor a QMP reply")


def test_error_unknown_xml_root(tmp_path):
    refused(bad(tmp_path, "domain.xml", "<domain type='kvm'><name>vm</name></domain>"), "<domain>")


def test_error_too_large(tmp_path):
    path = tmp_path / "huge.xml"
    with path.open("wb") as fh:
        fh.truncate(17 * 1024 * 1024)
    refused(path, "larger than 16 MiB")


def test_error_missing_file_and_empty_directory(tmp_path):
    refused(tmp_path / "nope.xml", "no such file")
    refused(tmp_path, "without a 'cpuinfo' file")


def test_error_host_model_unsupported(tmp_path):
    text = (FACTS / "qemu_4.2.0-q35.x86_64.xml").read_text()
    refused(bad(tmp_path, "tcg.xml", text.replace("<domain>kvm</domain>", "<domain>qemu</domain>")),
            "not 'kvm'")


def test_linux_flag_folding_agrees_with_catalog_linux_names(monkeypatch):
    """The interim folding (no Linux data in the catalog) gives what the Linux table gives."""
    from cpusolve.inputs.facts import linux_flags

    if not linux_flags.linux_data_present():
        pytest.skip("catalog imported without Linux spellings")
    flags = (FACTS / "this-host" / "cpuinfo").read_text().split("flags\t\t: ")[1].split("\n")[0].split()
    names = FeatureNames("cpuinfo")
    with_table = linux_flags.features_from_flags(flags, "AuthenticAMD", names)
    monkeypatch.setattr(linux_flags, "linux_data_present", lambda: False)
    assert linux_flags.features_from_flags(flags, "AuthenticAMD", names) == with_table


def test_error_qmp_expansion_of_an_arm_cpu(tmp_path):
    reply = {"return": {"model": {"name": "host", "props": {"aarch64": True, "sve": True, "pmu": True}}}}
    refused(bad(tmp_path, "arm.json", json.dumps(reply)), "aarch64")
