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
SKYLAKE = FACTS / "qemu_4.2.0-q35.x86_64.xml"
ROME = FACTS / "qemu_9.0.0-q35.x86_64.xml"
GOLD_DUMP = FACTS / "x86_64-cpuid-Xeon-Gold-6148.xml"
GOLD_CAPS = FACTS / "x86_64-cpuid-Xeon-Gold-6148-host.xml"


def test_hosts_named_after_files_in_one_group():
    pool = pool_from_facts([SKYLAKE, ROME, FACTS / "this-host"], group="prod")
    assert list(pool["hosts"]) == ["qemu_4.2.0-q35.x86_64", "qemu_9.0.0-q35.x86_64", "this-host"]
    assert pool["hosts"]["qemu_9.0.0-q35.x86_64"] == {"facts": str(ROME)}
    assert pool["migration"] == {"directed": False, "groups": [list(pool["hosts"])]}
    assert "prod" in pool["description"]


def test_directed_flag_is_written_with_the_group():
    assert pool_from_facts([SKYLAKE], group="g", directed=True)["migration"]["directed"] is True


def test_no_group_means_no_migration_section():
    pool = pool_from_facts([SKYLAKE, ROME], group=None)
    assert "migration" not in pool


def test_identical_facts_are_merged_with_count():
    # the raw dump and libvirt's decode of it state the same facts
    pool = pool_from_facts([GOLD_DUMP, SKYLAKE, GOLD_CAPS], group="g")
    assert list(pool["hosts"]) == ["x86_64-cpuid-Xeon-Gold-6148", "qemu_4.2.0-q35.x86_64"]
    merged = pool["hosts"]["x86_64-cpuid-Xeon-Gold-6148"]
    assert merged["count"] == 2
    assert merged["labels"] == {"same-facts-as": "x86_64-cpuid-Xeon-Gold-6148-host"}
    assert pool["migration"]["groups"] == [["x86_64-cpuid-Xeon-Gold-6148", "qemu_4.2.0-q35.x86_64"]]


def test_merge_can_be_turned_off():
    pool = pool_from_facts([GOLD_DUMP, GOLD_CAPS], group=None, merge=False)
    assert all("count" not in h for h in pool["hosts"].values()) and len(pool["hosts"]) == 2


def test_colliding_stems_get_their_directory(tmp_path):
    for rack in ("rack1", "rack2"):
        (tmp_path / rack).mkdir()
        shutil.copy(SKYLAKE if rack == "rack1" else ROME, tmp_path / rack / "domcaps.xml")
    pool = pool_from_facts([tmp_path / "rack1" / "domcaps.xml", tmp_path / "rack2" / "domcaps.xml"], None)
    assert list(pool["hosts"]) == ["rack1-domcaps", "rack2-domcaps"]


def test_paths_relative_to_the_pool_directory(tmp_path):
    pool = pool_from_facts([ROME], group=None, base=FACTS.parent)
    assert pool["hosts"]["qemu_9.0.0-q35.x86_64"]["facts"] == "facts/qemu_9.0.0-q35.x86_64.xml"


def test_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="at least one"):
        pool_from_facts([], group=None)
    with pytest.raises(InputError, match="given twice"):
        pool_from_facts([ROME, ROME], group=None)
    junk = tmp_path / "junk.xml"
    junk.write_text("<html/>")
    with pytest.raises(InputError, match=str(junk)):
        pool_from_facts([ROME, junk], group="g")


def test_the_pool_loads_and_keeps_counts(tmp_path):
    pool = pool_from_facts([GOLD_DUMP, GOLD_CAPS, ROME, FACTS / "this-host"], group="all", base=tmp_path)
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool))
    loaded = load_pool(str(path))
    assert {n: h.count for n, h in loaded.hosts.items()} == {
        "x86_64-cpuid-Xeon-Gold-6148": 2, "qemu_9.0.0-q35.x86_64": 1, "this-host": 1}
    assert loaded.hosts["qemu_9.0.0-q35.x86_64"].facts.vendor == "AuthenticAMD"
    # the sysfs verdicts travel with the cpuinfo directory
    assert "spectre_v2" in loaded.hosts["this-host"].facts.bugs
    assert [sorted(g) for g in loaded.groups] == [sorted(loaded.hosts)]  # one migration group of all three
