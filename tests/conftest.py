"""Shared helpers: small pools built in code, and the real catalog."""

from __future__ import annotations

import pytest

from cpusolve.encodings.catalog import catalog


@pytest.fixture(scope="session")
def cat():
    return catalog()


def pool_dict(hosts: dict, migration: dict | None = None, **requirements) -> dict:
    data: dict = {"hosts": hosts}
    if migration is not None:
        data["migration"] = migration
    if requirements:
        data["requirements"] = requirements
    return data
