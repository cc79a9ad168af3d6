"""Executors beyond this machine's cores: a dask.distributed cluster, opened from an
``--executor`` spec (``dask:tcp://scheduler:8786``, or ``dask:local`` for a LocalCluster).

dask is an optional extra (``pip install 'cpusolve[dask]'``): only this module imports it,
and only when asked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from cpusolve.errors import InputError

#: seconds to wait for a remote scheduler before giving up with one line
CONNECT_TIMEOUT_S = 10


@contextmanager
def open_executor(spec: str, jobs: int) -> Iterator[tuple[object, int]]:
    """(a dask Client, the number of workers to plan chunks for); closed on exit."""
    kind, _, where = spec.partition(":")
    if kind != "dask" or not where:
        raise InputError(f"--executor {spec!r}: expected dask:ADDRESS (tcp://host:8786) or dask:local")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--executor dask: needs dask.distributed (pip install 'cpusolve[dask]')") from None
    cluster = None
    try:
        if where == "local":
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            client = Client(where, timeout=CONNECT_TIMEOUT_S)
    except OSError as e:
        if cluster is not None:
            cluster.close()
        raise InputError(f"--executor {spec!r}: cannot reach the dask scheduler ({e})"[:300]) from None
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        yield client, workers
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
