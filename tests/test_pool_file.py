"""Reading pools: every host form, the migration graph forms, and one-line errors."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from cpusolve.api import load_pool
from cpusolve.domains.graph import domains
from cpusolve.errors import InputError

from .conftest import pool_dict

SKX = {"cpu": "Skylake-Server-v4"}
CLX = {"cpu": "Cascadelake-Server-v5"}


def test_catalog_host_gets_model_features_kvm_bits_and_bugs():
    pool = load_pool(pool_dict({"skx": {"cpu": "Skylake-Server-v4", "count": 40}}))
    facts = pool.hosts["skx"].facts
    assert pool.hosts["skx"].count == 40
    assert (facts.vendor, facts.fms) == ("GenuineIntel", (6, 85, 4))
    assert "avx512f" in facts.features and "arch-capabilities" in facts.features
    assert "pschange-mc-no" in facts.features
    # Skylake-SP silicon has MDS and Meltdown: KVM must not offer the matching *-no bits.
    assert {"mds", "meltdown", "spectre_v2", "retbleed"} <= facts.bugs
    assert "mds-no" not in facts.features and "rdctl-no" not in facts.features
    assert "rsba" not in facts.features


def test_add_remove_adjust_features():
    pool = load_pool(pool_dict({"clx": {"cpu": "Cascadelake-Server-v5", "add": ["md_clear"],
                                        "remove": ["hle", "rtm"]}}))
    f = pool.hosts["clx"].facts.features
    assert "md-clear" in f and "hle" not in f and "rtm" not in f
    assert "mds" not in pool.hosts["clx"].facts.bugs  # Cascade Lake says MDS_NO


def test_inline_host_folds_spellings_and_joins_bugs(capsys):
    """Stated bugs are joined with what Linux's rules derive (a host kernel older than a
    disclosure has no sysfs file for it, which never means "not affected"), with a warning."""
    pool = load_pool(pool_dict({"h": {"vendor": "GenuineIntel", "family": 6, "model": 106, "stepping": 6,
                                      "features": ["sse4_1", "avx2", "avx512f", "xsave", "avx"],
                                      "bugs": ["spectre_v2", "tsa"]}}))
    facts = pool.hosts["h"].facts
    assert {"sse4.1", "avx2", "avx512f"} <= facts.features
    assert {"spectre_v2", "tsa", "spectre_v1", "spec_store_bypass"} <= facts.bugs
    err = capsys.readouterr().err
    assert "Linux's rules also find" in err and "spec_store_bypass" in err
    assert "the host states tsa, which the rules do not derive (kept)" in err


def test_no_migration_key_is_one_domain():
    pool = load_pool(pool_dict({"a": SKX, "b": CLX, "c": SKX}))
    doms = domains(pool)
    assert len(doms) == 1 and doms[0].hosts == ("a", "b", "c")
    assert len(doms[0].types) == 2  # a and c share one host type


def test_undirected_edges_and_groups():
    pool = load_pool(pool_dict({"a": SKX, "b": CLX, "c": SKX, "d": CLX, "e": SKX},
                               {"edges": [["a", "b"]], "groups": [["c", "d"]]}))
    assert [d.hosts for d in domains(pool)] == [("a", "b"), ("c", "d"), ("e",)]


def test_directed_reachability():
    pool = load_pool(pool_dict({"old": SKX, "new": CLX, "newer": CLX},
                               {"directed": True, "edges": [["old", "new"], ["new", "newer"]]}))
    doms = {d.starts: d.hosts for d in domains(pool)}
    assert doms == {("old",): ("new", "newer", "old"), ("new",): ("new", "newer"), ("newer",): ("newer",)}


def test_directed_cycle_shares_domain():
    pool = load_pool(pool_dict({"a": SKX, "b": SKX, "c": CLX},
                               {"directed": True, "edges": [["a", "b"], ["b", "a"], ["b", "c"]]}))
    doms = {d.starts: d.hosts for d in domains(pool)}
    assert doms == {("a", "b"): ("a", "b", "c"), ("c",): ("c",)}


def test_node_link_graph(tmp_path):
    g = nx.Graph()
    g.add_node("a", cpu="Skylake-Server-v4", count=3)
    g.add_node("b", cpu="Cascadelake-Server-v5")
    g.add_node("c", cpu="Cascadelake-Server-v5")
    g.add_edge("a", "b")
    path = tmp_path / "g.json"
    path.write_text(json.dumps(nx.node_link_data(g, edges="links")))
    pool = load_pool(str(path))
    assert [d.hosts for d in domains(pool)] == [("a", "b"), ("c",)]
    assert pool.hosts["a"].count == 3
    assert [d.hosts for d in domains(load_pool(g))] == [("a", "b"), ("c",)]


@pytest.mark.parametrize("data,message", [
    (pool_dict({"a": {"cpu": "Skylake-Server-v9"}}), "host 'a': unknown CPU model 'Skylake-Server-v9'"),
    (pool_dict({"a": {"cpu": "Skylake-Server-v4", "add": ["md-claer"]}}), "did you mean 'md-clear'"),
    (pool_dict({"a": SKX}, {"edges": [["a", "bb"]]}), "host 'bb' is not in 'hosts'"),
    (pool_dict({}), "empty pool"),
    ({"hosts": []}, "empty pool"),
    (pool_dict({"a": {"cpu": "Skylake-Server-v4", "count": 0}}), "'count' must be at least 1"),
    (pool_dict({"a": {"cpu": "Skylake-Server-v4", "count": "x"}}), "'count' must be an integer"),
    (pool_dict({"a": {"vendor": "GenuineIntel", "family": 6, "model": 85, "features": []}}), "needs 'stepping'"),
    (pool_dict({"a": {"cpu": "Skylake-Server-v4", "bugs": ["mdss"]}}), "unknown bug 'mdss'"),
    (pool_dict({"a": SKX}, require=["avx2"], forbid=["avx2"]), "both required and forbidden"),
    (pool_dict({"a": SKX}, policy="lax"), "policy must be one of"),
    (pool_dict({"a": SKX}, min_model="Haswel-v4"), "did you mean 'Haswell-v4'"),
    ({"hosts": [{"name": "a", **SKX}, {"name": "a", **CLX}]}, "duplicate host name 'a'"),
    ([1, 2], "a pool file is a JSON object"),
])
def test_bad_input_is_one_line(data, message):
    with pytest.raises(InputError) as err:
        load_pool(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text('{\n  "hosts": {\n    "a": {"cpu": "Skylake-Server-v4",}\n  }\n}\n')
    with pytest.raises(InputError, match=r"pool.json:3:\d+: malformed JSON"):
        load_pool(str(path))


def test_duplicate_keys_in_json_object(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text('{"hosts": {"a": {"cpu": "Skylake-Server-v4"}, "a": {"cpu": "Haswell-v4"}}}')
    with pytest.raises(InputError, match="duplicate key 'a'"):
        load_pool(str(path))


def test_unknown_key_warns(capsys):
    load_pool({"hosts": {"a": {"cpu": "Skylake-Server-v4", "cout": 3}}})
    assert "unknown key 'cout' ignored (did you mean 'count'?)" in capsys.readouterr().err


FACTS = __import__("pathlib").Path(__file__).parent / "data" / "facts"


def test_domcapabilities_identity_is_never_guessed():
    """virsh domcapabilities has no <signature>: the host's identity comes from the same
    host's virsh capabilities (whose silicon bits also decide the bugs) or is stated; the
    host-model's name (here kvm64, family 15) is never taken for it."""
    dc, caps = str(FACTS / "emr-vm.domcaps.xml"), str(FACTS / "emr-vm.caps.xml")
    with pytest.raises(InputError, match=r"host 'h': .*emr-vm.domcaps.xml \(libvirt-domcapabilities\) does not say "
                                         r"the CPU's family/model/stepping.*\"capabilities\""):
        load_pool({"hosts": {"h": {"facts": dc}}})
    paired = load_pool({"hosts": {"h": {"facts": dc, "capabilities": caps}}}).hosts["h"].facts
    assert paired.fms == (6, 207, 2) and "emr-vm.caps.xml" in paired.origin
    stated = load_pool({"hosts": {"h": {"facts": dc, "family": 6, "model": 207, "stepping": 2}}}).hosts["h"].facts
    assert stated.fms == (6, 207, 2)
    # every key next to facts is honoured or refused
    with pytest.raises(InputError, match="'family' comes from the fact file"):
        load_pool({"hosts": {"h": {"facts": caps, "family": 6, "model": 85, "stepping": 4}}})
    with pytest.raises(InputError, match="'vendor' comes from the fact file"):
        load_pool({"hosts": {"h": {"facts": caps, "vendor": "GenuineIntel"}}})
    with pytest.raises(InputError, match="states its own identity"):
        load_pool({"hosts": {"h": {"facts": caps, "capabilities": caps}}})
    with pytest.raises(InputError, match="must be the host's `virsh capabilities` XML"):
        load_pool({"hosts": {"h": {"facts": dc, "capabilities": dc}}})
    with pytest.raises(InputError, match="not the same host"):
        load_pool({"hosts": {"h": {"facts": str(FACTS / "qemu_9.0.0-q35.x86_64.xml"), "capabilities": caps}}})
    with pytest.raises(InputError, match="has none"):
        load_pool({"hosts": {"h": {"cpu": "Skylake-Server-v4", "capabilities": caps}}})
