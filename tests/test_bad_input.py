"""Bad input of every kind: exactly one line on stderr, exit code 2, never a traceback.

Each case runs through the CLI (click's CliRunner; a few as real ``python -m cpusolve.cli``
processes) and, where the input is a pool, through the library, which must raise
``InputError`` with the same message the CLI prints after ``cpusolve: error: ``.
Fixtures: ``tests/data/bad-input/`` (see its README).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import cpusolve.inputs.facts.common as readers_common
import cpusolve.inputs.pool_file as pool_file
from cpusolve.api import load_pool, solve
from cpusolve.cli import main
from cpusolve.errors import CpusolveError, InputError

HERE = Path(__file__).resolve().parent
BAD = HERE / "data" / "bad-input"
FACTS = HERE / "data" / "facts"
PREFIX = "cpusolve: error: "
MICROCODE = ["md-clear", "flush-l1d", "ssbd", "stibp", "spec-ctrl"]
SKX = {"cpu": "Skylake-Server-v4", "add": MICROCODE}
GOOD = {"hosts": {"a": SKX, "b": {"cpu": "Cascadelake-Server-v5", "add": MICROCODE}}}


def invoke(*args, input=None):
    result = CliRunner().invoke(main, [str(a) for a in args], input=input)
    return result


def one_error_line(result, needle: str) -> str:
    """The run failed as bad input: exit 2, no output, one stderr line containing ``needle``."""
    err = result.stderr
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, err
    assert result.stdout == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX)
    assert needle in lines[0], lines[0]
    return lines[0][len(PREFIX):]


def library_same(source, message: str) -> None:
    """load_pool() and solve() raise InputError with exactly the CLI's message."""
    with pytest.raises(InputError) as e:
        load_pool(source)
    assert str(e.value) == message
    with pytest.raises(CpusolveError) as e:
        solve(source)
    assert str(e.value) == message


def write(tmp_path: Path, content, name: str = "pool.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return path


def hosts(**entries) -> dict:
    return {"hosts": entries}


def with_req(**req) -> dict:
    return {**GOOD, "requirements": req}


def with_mig(mig) -> dict:
    return {**GOOD, "migration": mig}


def xfail(reason: str):
    return pytest.mark.xfail(strict=True, reason=f"bug: {reason}")


# -- pool files: (content, text the error line must contain) --------------------------------

POOL_CASES = {
    # malformed JSON
    "truncated": ('{"hosts": {"a": {"cpu": "Skylake-Server-v4"}}', "truncated JSON"),
    "trailing-comma": ('{"hosts": {"a": {"cpu": "Skylake-Server-v4"},}}', "malformed JSON"),
    "single-quotes": ("{'hosts': {}}", "malformed JSON"),
    "yaml-not-json": ("hosts:\n  a:\n    cpu: Skylake-Server-v4\n", "malformed JSON"),
    "empty-file": ("", "truncated JSON"),
    "whitespace-only": ("  \n\t\n", "truncated JSON"),
    "two-documents": (json.dumps(GOOD) + json.dumps(GOOD), "malformed JSON"),
    "deeply-nested": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "fixture-truncated": (BAD / "pool-truncated.json", "malformed JSON"),
    # not text
    "latin1": (BAD / "pool-latin1.json", "not UTF-8"),
    "binary-garbage": (BAD / "garbage.bin", "binary data"),
    "nul-bytes": (b"\x00\x01\x02binary", "binary data"),
    # wrong types, top level
    "top-list": ([], "a pool file is a JSON object"),
    "top-string": ('"hosts"', "a pool file is a JSON object"),
    "top-number": ("42", "a pool file is a JSON object"),
    "top-null": ("null", "a pool file is a JSON object"),
    "hosts-string": ({"hosts": "a,b"}, "'hosts' must be an object"),
    "hosts-number": ({"hosts": 3}, "'hosts' must be an object"),
    "hosts-list-of-strings": ({"hosts": ["a", "b"]}, "every entry of 'hosts' must be an object"),
    "hosts-list-no-name": ({"hosts": [{"cpu": "Skylake-Server-v4"}]}, "has no 'name'"),
    "hosts-list-name-number": ({"hosts": [{"name": 5, "cpu": "Skylake-Server-v4"}]}, "has no 'name'"),
    # wrong types, host level
    "host-string": (hosts(a="Skylake-Server-v4"), "host 'a' its entry must be an object"),
    "host-list": (hosts(a=["Skylake-Server-v4"]), "host 'a' its entry must be an object"),
    "host-null": (hosts(a=None), "host 'a' its entry must be an object"),
    "host-empty-name": ({"hosts": {"": SKX}}, "host names must be non-empty"),
    "cpu-number": (hosts(a={"cpu": 6}), "'cpu' must be a string"),
    "cpu-list": (hosts(a={"cpu": ["Skylake-Server-v4"]}), "'cpu' must be a string"),
    "add-string": (hosts(a={"cpu": "Skylake-Server-v4", "add": "md-clear"}), "'add' must be a list"),
    "add-number-entry": (hosts(a={"cpu": "Skylake-Server-v4", "add": [1]}), "every entry of 'add' must be a string"),
    "remove-object": (hosts(a={"cpu": "Skylake-Server-v4", "remove": {}}), "'remove' must be a list"),
    "count-string": (hosts(a={**SKX, "count": "4"}), "'count' must be an integer"),
    "count-float": (hosts(a={**SKX, "count": 2.5}), "'count' must be an integer"),
    "count-bool": (hosts(a={**SKX, "count": True}), "'count' must be an integer"),
    "count-nan": ('{"hosts": {"a": {"cpu": "Skylake-Server-v4", "count": NaN}}}', "'count' must be an integer"),
    "count-zero": (hosts(a={**SKX, "count": 0}), "'count' must be at least 1, not 0"),
    "count-negative": (hosts(a={**SKX, "count": -3}), "'count' must be at least 1, not -3"),
    "labels-number": (hosts(a={**SKX, "labels": 5}), "'labels' must be an object"),
    "bugs-string": (hosts(a={**SKX, "bugs": "mds"}), "'bugs' must be a list"),
    "bugs-number-entry": (hosts(a={**SKX, "bugs": [3]}), "every entry of 'bugs' must be a string"),
    "hypervisor-unknown": (hosts(a={**SKX, "hypervisor": "xen"}), "'hypervisor' must be 'kvm'"),
    "hypervisor-list": (hosts(a={**SKX, "hypervisor": ["kvm"]}), "'hypervisor' must be 'kvm'"),
    "facts-number": (hosts(a={"facts": 7}), "'facts' must be a string"),
    "cpu-and-features": (hosts(a={"cpu": "Skylake-Server-v4", "features": []}), "give exactly one of"),
    "no-cpu-features-facts": (hosts(a={"count": 2}), "give exactly one of"),
    "cpu-with-family": (hosts(a={"cpu": "Skylake-Server-v4", "family": 6}), "'family' comes from the catalog"),
    "inline-features-string": (hosts(a={"vendor": "GenuineIntel", "family": 6, "model": 85, "stepping": 4,
                                        "features": "sse"}), "'features' must be a list"),
    "inline-family-string": (hosts(a={"vendor": "GenuineIntel", "family": "6", "model": 85, "stepping": 4,
                                      "features": []}), "'family' must be an integer"),
    "inline-family-infinite": ('{"hosts": {"a": {"vendor": "GenuineIntel", "family": 1e400, "model": 1, '
                               '"stepping": 1, "features": []}}}', "'family' must be an integer"),
    "inline-missing-stepping": (hosts(a={"vendor": "GenuineIntel", "family": 6, "model": 85, "features": []}),
                                "inline host needs 'stepping'"),
    "inline-model-negative": (hosts(a={"vendor": "GenuineIntel", "family": 6, "model": -1, "stepping": 4,
                                       "features": []}), "'model' -1 is out of range"),
    "inline-family-huge": (hosts(a={"vendor": "GenuineIntel", "family": 10**30, "model": 1, "stepping": 4,
                                    "features": []}), "out of range"),
    "inline-vendor-number": (hosts(a={"vendor": 1, "family": 6, "model": 85, "stepping": 4, "features": []}),
                             "'vendor' must be a string"),
    # wrong types, migration level
    "migration-list": (with_mig([["a", "b"]]), "'migration' must be an object"),
    "directed-string": (with_mig({"directed": "yes"}), "'directed' must be true or false"),
    "edges-object": (with_mig({"edges": {"a": "b"}}), "'edges' must be a list"),
    "edge-single": (with_mig({"edges": [["a"]]}), "every edge is a pair"),
    "edge-triple": (with_mig({"edges": [["a", "b", "a"]]}), "every edge is a pair"),
    "edge-string": (with_mig({"edges": ["a-b"]}), "every edge is a pair"),
    "edge-numbers": (with_mig({"edges": [[1, 2]]}), "host names must be a string"),
    "edge-nested": (with_mig({"edges": [["a", ["b"]]]}), "host names must be a string"),
    "groups-string": (with_mig({"groups": "a,b"}), "'groups' must be a list"),
    "group-string": (with_mig({"groups": ["ab"]}), "every group must be a list"),
    "group-twice": (with_mig({"groups": [["a", "a"]]}), "names a host twice"),
    # wrong types, requirements level
    "requirements-list": ({**GOOD, "requirements": []}, "'requirements' must be an object"),
    "requirements-string": ({**GOOD, "requirements": "strict"}, "'requirements' must be an object"),
    "require-string": (with_req(require="avx2"), "'require' must be a list"),
    "require-number-entry": (with_req(require=[1]), "every entry of 'require' must be a string"),
    "forbid-object": (with_req(forbid={}), "'forbid' must be a list"),
    "min-model-number": (with_req(min_model=4), "'min_model' must be a string"),
    "vendor-number": (with_req(vendor=1), "'vendor' must be a string"),
    "policy-number": (with_req(policy=1), "'policy' must be a string"),
    "policy-unknown": (with_req(policy="lenient"), "policy must be one of strict, compat"),
    "waive-string": (with_req(waive="mds"), "'waive' must be a list"),
    "kernels-string": (with_req(kernels="6.1"), "'kernels' must be a list"),
    "kernels-empty": (with_req(kernels=[]), "'kernels' needs at least one"),
    "kernels-unknown": (with_req(kernels=["5.10"]), "no rule table for Linux '5.10'"),
    "qemu-number": (with_req(qemu=7.2), "'qemu' must be a string"),
    "qemu-unknown": (with_req(qemu="8.0"), "qemu must be one of 7.2, 10.2, current"),
    "require-and-forbid": (with_req(require=["sse4.2"], forbid=["SSE4_2"]), "both required and forbidden"),
    # unknown names, with the closest known ones
    "unknown-model": (hosts(a={"cpu": "Skylake-Server-v9"}), "did you mean"),
    "unknown-model-typo": (hosts(a={"cpu": "Cascadelake-Sever-v4"}), "did you mean 'Cascadelake-Server-v4'"),
    "unknown-add-feature": (hosts(a={"cpu": "Skylake-Server-v4", "add": ["md-cleer"]}),
                            "unknown CPU feature 'md-cleer' (did you mean"),
    "unknown-inline-feature": (hosts(a={"vendor": "GenuineIntel", "family": 6, "model": 85, "stepping": 4,
                                        "features": ["sse4.2", "avx22"]}), "unknown CPU feature 'avx22'"),
    "unknown-inline-vendor": (hosts(a={"vendor": "GenuineIntle", "family": 6, "model": 85, "stepping": 4,
                                       "features": []}), "did you mean 'GenuineIntel'"),
    "unknown-bug": (hosts(a={**SKX, "bugs": ["mds2"]}), "unknown bug 'mds2' (did you mean"),
    "unknown-require": (with_req(require=["avx512"]), "unknown CPU feature 'avx512' (did you mean"),
    "unknown-min-model": (with_req(min_model="Haswel-v4"), "did you mean 'Haswell-v4'"),
    "unknown-waive": (with_req(waive=["retbleeed"]), "did you mean 'retbleed'"),
    "unknown-req-vendor": (with_req(vendor="AuthenticAmd"), "unknown vendor 'AuthenticAmd'"),
    # dangling edges
    "edge-to-unknown-host": (with_mig({"edges": [["a", "c"]]}), "host 'c' is not in 'hosts'"),
    "edge-typo-host": (with_mig({"edges": [["a", "bb"]]}), "host 'bb' is not in 'hosts' (did you mean 'b'?)"),
    "group-unknown-host": (with_mig({"groups": [["a", "b", "zz"]]}), "host 'zz' is not in 'hosts'"),
    # empty pools
    "no-hosts-key": ({}, "no 'hosts' key"),
    "hosts-null": ({"hosts": None}, "no 'hosts' key"),
    "hosts-empty-object": ({"hosts": {}}, "empty pool"),
    "hosts-empty-list": ({"hosts": []}, "empty pool"),
    "node-link-empty": ({"nodes": [], "links": []}, "empty pool"),
    # duplicates
    "duplicate-host-key": (BAD / "pool-duplicate-keys.json", "duplicate key 'kvm-01'"),
    "duplicate-inner-key": ('{"hosts": {"a": {"cpu": "Skylake-Server-v4", "cpu": "Icelake-Server-v7"}}}',
                            "duplicate key 'cpu'"),
    "duplicate-host-list": ({"hosts": [{"name": "a", **SKX}, {"name": "a", "cpu": "Icelake-Server-v7"}]},
                            "duplicate host name 'a'"),
    "duplicate-node-id-mixed-types": ({"nodes": [{"id": 1, **SKX}, {"id": "1", **SKX}], "links": []},
                                      "duplicate host name '1'"),
    "duplicate-node-id": ({"nodes": [{"id": "a", **SKX}, {"id": "a", "cpu": "Icelake-Server-v7"}], "links": []},
                          "'a'"),
    # node-link graphs of the wrong shape
    "node-link-graph-list": ({"nodes": [{"id": "a", **SKX}], "links": [], "graph": []}, "'graph'"),
    "node-link-nodes-string": ({"nodes": "a", "links": []}, "'nodes'"),
    "node-link-dangling-link": ({"nodes": [{"id": "a", **SKX}], "links": [{"source": "a", "target": "zz"}]},
                                "host 'zz'"),
}


@pytest.mark.parametrize("content,needle", list(POOL_CASES.values()), ids=list(POOL_CASES))
def test_bad_pool_file(tmp_path, content, needle):
    path = content if isinstance(content, Path) else write(tmp_path, content)
    message = one_error_line(invoke(path), needle)
    assert str(path) in message, "the error names the file"
    library_same(str(path), message)


# -- host fact files ---------------------------------------------------------------------------

FACT_CASES = {
    "billion-laughs": (BAD / "billion-laughs.xml", "<!DOCTYPE ...> declaration refused"),
    "external-entity": (BAD / "external-entity.xml", "<!DOCTYPE ...> declaration refused"),
    "parameter-entity": (BAD / "parameter-entity.xml", "<!DOCTYPE ...> declaration refused"),
    "external-entity-utf16": (BAD / "external-entity-utf16.xml", "<!DOCTYPE ...> declaration refused"),
    "doctype-after-comment": (BAD / "doctype-after-comment.xml", "<!DOCTYPE ...> declaration refused"),
    "truncated-xml": (BAD / "truncated-domcaps.xml", "truncated XML"),
    "binary-garbage": (BAD / "garbage.bin", "binary data"),
    "png": (BAD / "garbage.png", "binary data"),
    "aarch64-capabilities": (FACTS / "caps_2.10.0.aarch64.xml", "architecture 'aarch64'"),
    "aarch64-cpuinfo": (BAD / "aarch64-cpuinfo", "aarch64 machine"),
    "ppc64le-cpuinfo": (BAD / "ppc64le-cpuinfo", "ppc64 machine"),
    "s390x-fact-file": (BAD / "s390x-facts.json", "architecture 's390x'"),
    "missing": (Path("/nonexistent/kvm-07.xml"), "no such file"),
    "pool-file-as-facts": (BAD / "pool-duplicate-keys.json", "duplicate key 'kvm-01'"),
}


@pytest.mark.parametrize("fact,needle", list(FACT_CASES.values()), ids=list(FACT_CASES))
def test_bad_fact_file(tmp_path, fact, needle):
    path = write(tmp_path, hosts(kvm07={"facts": str(fact)}, skx=SKX))
    message = one_error_line(invoke(path), needle)
    assert str(fact) in message, "the error names the fact file"
    library_same(str(path), message)


def test_fact_file_relative_to_the_pool(tmp_path):
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "kvm-07.xml").write_bytes((BAD / "billion-laughs.xml").read_bytes())
    path = write(tmp_path, hosts(kvm07={"facts": "hosts/kvm-07.xml"}))
    message = one_error_line(invoke(path), "declaration refused")
    assert str(tmp_path / "hosts" / "kvm-07.xml") in message
    library_same(str(path), message)


def test_fact_path_with_nul_byte(tmp_path):
    path = write(tmp_path, hosts(a={"facts": "kvm\u000007.xml"}))
    message = one_error_line(invoke(path), "not a usable file name")
    library_same(str(path), message)


CONTROL_CASES = {
    "newline-in-model": (hosts(a={"cpu": "Skylake\nServer"}), "unknown CPU model"),
    "newline-in-host-name": (hosts(**{"a\nb": {"cpu": "Skylake-Server-v9"}}), "control characters"),
    "forged-line-in-feature": (hosts(a={**SKX, "add": ["md-clear\r\ncpusolve: error: forged"]}),
                               "unknown CPU feature"),
    "newline-in-edge": (with_mig({"edges": [["a", "b\nc"]]}), "is not in 'hosts'"),
    "nul-in-fact-path": (hosts(a={"facts": "kvm\u000007.xml"}), "not a usable file name"),
}


# Names from the input are escaped in error lines (CpusolveError): a newline must not split
# the error in two or forge a second 'cpusolve: error:' line, and a NUL never reaches a terminal.
@pytest.mark.parametrize("content,needle", list(CONTROL_CASES.values()), ids=list(CONTROL_CASES))
def test_control_characters_stay_on_one_line(tmp_path, content, needle):
    path = write(tmp_path, content)
    result = invoke(path)
    message = one_error_line(result, needle)
    assert message.isprintable(), repr(message)


# -- files that are not regular, readable files -----------------------------------------------

def test_directory_instead_of_pool_file(tmp_path):
    message = one_error_line(invoke(tmp_path), "is a directory")
    library_same(str(tmp_path), message)


def test_directory_instead_of_fact_file(tmp_path):
    (tmp_path / "d").mkdir()
    path = write(tmp_path, hosts(a={"facts": str(tmp_path / "d")}))
    message = one_error_line(invoke(path), "directory without a 'cpuinfo' file")
    library_same(str(path), message)


def test_path_below_a_file(tmp_path):
    below = write(tmp_path, GOOD) / "pool.json"
    message = one_error_line(invoke(below), "cannot read")
    library_same(str(below), message)


def test_symlink_loop_and_dangling_symlink(tmp_path):
    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")
    (tmp_path / "b.json").symlink_to(tmp_path / "a.json")
    message = one_error_line(invoke(tmp_path / "a.json"), "cannot read")
    library_same(str(tmp_path / "a.json"), message)
    (tmp_path / "c.json").symlink_to(tmp_path / "missing.json")
    message = one_error_line(invoke(tmp_path / "c.json"), "no such file")
    library_same(str(tmp_path / "c.json"), message)


def _unreadable(path: Path) -> Path:
    path.chmod(0)
    try:
        with path.open("rb"):
            pytest.skip("running as a user who can read a mode-000 file (root)")
    except PermissionError:
        pass
    return path


def test_unreadable_pool_file(tmp_path):
    path = _unreadable(write(tmp_path, GOOD))
    message = one_error_line(invoke(path), "cannot read: Permission denied")
    library_same(str(path), message)


def test_unreadable_fact_file(tmp_path):
    fact = _unreadable(write(tmp_path, (FACTS / "x86_64-cpuid-Cooperlake.xml").read_text(), "kvm.xml"))
    path = write(tmp_path, hosts(a={"facts": str(fact)}))
    message = one_error_line(invoke(path), "cannot read: Permission denied")
    library_same(str(path), message)


# -- size limits --------------------------------------------------------------------------------

def test_huge_pool_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as fh:  # sparse: no disk, no memory
        fh.truncate(pool_file.MAX_POOL_BYTES + 1)
    message = one_error_line(invoke(path), f"larger than {pool_file.MAX_POOL_BYTES >> 20} MiB")
    library_same(str(path), message)


def test_huge_fact_file_is_refused_before_reading(tmp_path):
    fact = tmp_path / "huge.xml"
    with fact.open("wb") as fh:
        fh.truncate(readers_common.MAX_BYTES + 1)
    path = write(tmp_path, hosts(a={"facts": str(fact)}))
    message = one_error_line(invoke(path), "larger than")
    library_same(str(path), message)


def test_pool_over_a_lowered_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(pool_file, "MAX_POOL_BYTES", 1000)
    path = write(tmp_path, {**GOOD, "description": "x" * 2000})
    message = one_error_line(invoke(path), "larger than")
    library_same(str(path), message)
    one_error_line(invoke("-", input=path.read_text()), "larger than")


def test_pool_from_an_endless_stream_is_refused(tmp_path, monkeypatch):
    """A FIFO is refused before anything is read: it can neither block nor fill memory."""
    monkeypatch.setattr(pool_file, "MAX_POOL_BYTES", 4096)
    fifo = tmp_path / "pool.fifo"
    os.mkfifo(fifo)
    written = [0]
    cap = 32 << 20

    def writer():
        try:
            with fifo.open("wb") as fh:
                chunk = b" " * 65536
                while written[0] < cap:
                    fh.write(chunk)
                    written[0] += len(chunk)
        except BrokenPipeError:
            pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.raises(InputError, match="is a FIFO"):
            load_pool(str(fifo))
    finally:
        if thread.is_alive():  # unblock a writer whose reader never came
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            thread.join(5)
            os.close(fd)
    assert written[0] <= 1 << 20, f"read {written[0]} bytes of a stream to find a 4 KiB pool too big"


# -- warnings: unknown keys and self-loops still run -------------------------------------------

def test_unknown_keys_warn_and_still_run(tmp_path):
    data = {"hosts": {"a": {**SKX, "colour": "red"}, "b": GOOD["hosts"]["b"]}, "hostz": {},
            "migration": {"edges": [["a", "b"]], "direction": "both"},
            "requirements": {"polcy": "compat"}}
    path = write(tmp_path, data)
    result = invoke(path, "--format", "qemu")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 4 and all(x.startswith("cpusolve: warning: ") for x in lines)
    text = "\n".join(lines)
    for key in ("colour", "hostz", "direction", "polcy"):
        assert f"unknown key '{key}' ignored" in text
    assert "did you mean 'hosts'" in text and "did you mean 'directed'" in text
    assert "did you mean 'policy'" in text
    assert result.stdout.count(",enforce") == 1
    assert solve(load_pool(str(path))).domains[0].status == "ok"


def test_misspelt_host_key_warns_then_errors(tmp_path):
    """A typo'd 'cpu' gives the warning with the suggestion, then the one error line."""
    path = write(tmp_path, hosts(a={"cpus": "Skylake-Server-v4"}))
    result = invoke(path)
    assert result.exit_code == 2 and result.stdout == ""
    warning, error = result.stderr.splitlines()
    assert "unknown key 'cpus' ignored (did you mean 'cpu'?)" in warning
    assert error.startswith(PREFIX) and "give exactly one of" in error


def test_self_loop_warns_and_still_runs(tmp_path):
    path = write(tmp_path, with_mig({"edges": [["a", "a"], ["a", "b"]]}))
    result = invoke(path, "--format", "json")
    assert result.exit_code == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("cpusolve: warning: ") and "self-loop a -> a ignored" in line
    assert [d["status"] for d in json.loads(result.stdout)["domains"]] == ["ok"]


# -- command-line options ---------------------------------------------------------------------

OPTION_CASES = {
    "timeout-zero": (["--timeout", "0"], "--timeout must be positive"),
    "timeout-negative": (["--timeout", "-1"], "--timeout must be positive"),
    "timeout-nan": (["--timeout", "nan"], "--timeout"),
    "timeout-inf": (["--timeout", "inf"], "--timeout"),
    "kernel-unknown": (["--kernel", "9.9"], "no rule table for Linux '9.9'"),
    "waive-unknown": (["--waive", "mdss"], "did you mean 'mds'"),
    "output-in-missing-directory": (["-o", "/nonexistent/dir/cpu.txt"], "/nonexistent/dir"),
}


@pytest.mark.parametrize("args,needle", list(OPTION_CASES.values()), ids=list(OPTION_CASES))
def test_bad_option(tmp_path, args, needle):
    path = write(tmp_path, GOOD)
    one_error_line(invoke(path, *args), needle)


def test_library_refuses_a_nan_timeout():
    with pytest.raises(InputError):
        solve(GOOD, timeout=math.nan)


def test_library_refuses_an_unknown_policy():
    with pytest.raises(InputError, match="policy must be one of strict, compat, not 'lenient'"):
        solve(GOOD, policy="lenient")


# -- real processes ---------------------------------------------------------------------------

def _cli(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "cpusolve.cli", *map(str, args)], input=stdin,
                          capture_output=True, timeout=120)


def test_process_billion_laughs_fact_file(tmp_path):
    path = write(tmp_path, hosts(kvm07={"facts": str(BAD / "billion-laughs.xml")}))
    proc = _cli(path)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and proc.stdout == b""
    assert len(err.splitlines()) == 1 and "declaration refused" in err and "Traceback" not in err


def test_process_binary_garbage_on_stdin():
    proc = _cli("-", stdin=(BAD / "garbage.bin").read_bytes())
    err = proc.stderr.decode()
    assert proc.returncode == 2 and proc.stdout == b""
    assert len(err.splitlines()) == 1 and err.startswith(PREFIX) and "Traceback" not in err

