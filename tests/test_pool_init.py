"""``cpusolve pool init``: pool.json from real host fact files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cpusolve.errors import InputError
from cpusolve.hostfacts.derive import load_pool
from cpusolve.inputs.pool_init import pool_from_facts

FACTS = Path(__file__).parent / "data" / "facts"
ROME = FACTS / "qemu_9.0.0-q35.x86_64.xml"
GOLD_DUMP = FACTS / "x86_64-cpuid-Xeon-Gold-6148.xml"
GOLD_CAPS = FACTS / "x86_64-cpuid-Xeon-Gold-6148-host.xml"
#: one host's virsh domcapabilities (what KVM gives, no identity) and virsh capabilities
EMR_DC = FACTS / "emr-vm.domcaps.xml"
EMR_CAPS = FACTS / "emr-vm.caps.xml"


def test_hosts_named_after_files_in_one_group():
    pool = pool_from_facts([EMR_DC, GOLD_DUMP, EMR_CAPS, FACTS / "this-host"], group="prod")
    assert list(pool["hosts"]) == ["emr-vm", "x86_64-cpuid-Xeon-Gold-6148", "this-host"]
    # a domcapabilities file and the same host's capabilities are one host
    assert pool["hosts"]["emr-vm"] == {"facts": str(EMR_DC), "capabilities": str(EMR_CAPS)}
    assert pool["migration"] == {"directed": False, "groups": [list(pool["hosts"])]}
    assert "prod" in pool["description"]


def test_directed_flag_is_written_with_the_group():
    assert pool_from_facts([GOLD_DUMP], group="g", directed=True)["migration"]["directed"] is True


def test_no_group_means_no_migration_section():
    pool = pool_from_facts([GOLD_DUMP, FACTS / "this-host"], group=None)
    assert "migration" not in pool


def test_a_domcapabilities_file_without_its_capabilities_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"qemu_9.0.0-q35.x86_64.xml: .* give the same host's `virsh capabilities`"):
        pool_from_facts([ROME], group=None)
    # paired by host name, in the same directory
    for name in ("kvm-07.domcaps.xml", "kvm-07.caps.xml", "kvm-08-domcapabilities.xml", "kvm-08_capabilities.xml"):
        shutil.copy(EMR_DC if "dom" in name else EMR_CAPS, tmp_path / name)
    pool = pool_from_facts(sorted(tmp_path.glob("*.xml")), group=None, merge=False)
    assert {n: h["capabilities"] for n, h in pool["hosts"].items()} == {
        "kvm-07": str(tmp_path / "kvm-07.caps.xml"), "kvm-08": str(tmp_path / "kvm-08_capabilities.xml")}


def test_identical_facts_are_merged_with_count():
    # the raw dump and libvirt's decode of it state the same facts
    pool = pool_from_facts([GOLD_DUMP, EMR_DC, GOLD_CAPS, EMR_CAPS], group="g")
    assert list(pool["hosts"]) == ["x86_64-cpuid-Xeon-Gold-6148", "emr-vm"]
    merged = pool["hosts"]["x86_64-cpuid-Xeon-Gold-6148"]
    assert merged["count"] == 2
    assert merged["labels"] == {"same-facts-as": "x86_64-cpuid-Xeon-Gold-6148-host"}
    assert pool["migration"]["groups"] == [["x86_64-cpuid-Xeon-Gold-6148", "emr-vm"]]


def test_merge_can_be_turned_off():
    pool = pool_from_facts([GOLD_DUMP, GOLD_CAPS], group=None, merge=False)
    assert all("count" not in h for h in pool["hosts"].values()) and len(pool["hosts"]) == 2


def test_colliding_stems_get_their_directory(tmp_path):
    for rack in ("rack1", "rack2"):
        (tmp_path / rack).mkdir()
        shutil.copy(GOLD_DUMP if rack == "rack1" else FACTS / "x86_64-cpuid-Cooperlake.xml", tmp_path / rack / "h.xml")
    pool = pool_from_facts([tmp_path / "rack1" / "h.xml", tmp_path / "rack2" / "h.xml"], None)
    assert list(pool["hosts"]) == ["rack1-h", "rack2-h"]


def test_paths_relative_to_the_pool_directory(tmp_path):
    pool = pool_from_facts([EMR_DC, EMR_CAPS], group=None, base=FACTS.parent)
    assert pool["hosts"]["emr-vm"] == {"facts": "facts/emr-vm.domcaps.xml", "capabilities": "facts/emr-vm.caps.xml"}


def test_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="at least one"):
        pool_from_facts([], group=None)
    with pytest.raises(InputError, match="given twice"):
        pool_from_facts([GOLD_DUMP, GOLD_DUMP], group=None)
    junk = tmp_path / "junk.xml"
    junk.write_text("<html/>")
    with pytest.raises(InputError, match=str(junk)):
        pool_from_facts([GOLD_DUMP, junk], group="g")


def test_the_pool_loads_and_keeps_counts(tmp_path):
    pool = pool_from_facts([GOLD_DUMP, GOLD_CAPS, EMR_DC, EMR_CAPS, FACTS / "this-host"], group="all", base=tmp_path)
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool))
    loaded = load_pool(str(path))
    assert {n: h.count for n, h in loaded.hosts.items()} == {
        "x86_64-cpuid-Xeon-Gold-6148": 2, "emr-vm": 1, "this-host": 1}
    # the identity is the capabilities' signature, never the host-model's (kvm64: 15/6/1)
    assert loaded.hosts["emr-vm"].facts.fms == (6, 207, 2)
    # the sysfs verdicts travel with the cpuinfo directory
    assert "spectre_v2" in loaded.hosts["this-host"].facts.bugs
    assert [sorted(g) for g in loaded.groups] == [sorted(loaded.hosts)]  # one migration group of all three
