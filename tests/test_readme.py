"""The README's shown outputs are real: every `$ cpusolve ...` block is re-run and each line
it shows (but "...") must appear in the real output, in order."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpusolve.cli import main

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```\n\$ (cpusolve [^\n]+)\n(.*?)```", re.S)


def blocks():
    return BLOCK.findall((ROOT / "README.md").read_text())


def test_readme_has_example_outputs():
    assert len(blocks()) >= 4


@pytest.mark.parametrize("command,shown", blocks(), ids=[b[0] for b in blocks()])
def test_readme_output_is_real(command, shown, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, shlex.split(command)[1:])
    real = result.stdout.splitlines()
    pos = 0
    for line in shown.splitlines():
        if line.strip() in ("...", ""):
            continue
        try:
            pos = real.index(line, pos) + 1
        except ValueError:
            pytest.fail(f"README shows a line `{command}` does not print (in order):\n{line}\n--- real:\n"
                        + "\n".join(real))
