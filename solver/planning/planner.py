"""An incremental planner for schedulers: change the pool, re-solve only what changed."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from cpusolve.core.hosts import Host
from cpusolve.core.pool import Pool, Requirements
from cpusolve.encodings.catalog import suggest as close_names
from cpusolve.engine.cache import SolveCache
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S
from cpusolve.engine.solve import solve
from cpusolve.errors import InputError
from cpusolve.hostfacts.derive import host_from_entry
from cpusolve.inputs.pool_file import source_dir
from cpusolve.planning.whatif import _drop_from_groups, copy_pool
from cpusolve.report.records import Result


@dataclass
class Planner:
    """An incremental planner for a scheduler: change the pool, re-solve what changed.

    Solver outcomes are kept per (host kinds, requirements) of a domain, so adding or
    removing a host re-solves only the domains whose set of host kinds changed; a host of a
    kind the domain already has costs no solve at all.
    """

    pool: Pool
    requirements: Requirements | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    _cache: SolveCache = field(default_factory=SolveCache)
    _result: Result | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pool, Pool):
            raise InputError(f"Planner takes a Pool (cpusolve.load_pool), not {type(self.pool).__name__}")
        self.pool = copy_pool(self.pool)

    def solve(self) -> Result:
        if self._result is None:
            self._result = solve(self.pool, requirements=self.requirements, timeout=self.timeout,
                                 cache=self._cache)
        return self._result

    def add_host(self, name: str, spec: dict, peers=(), group: bool = False) -> None:
        """Add (or replace) host ``name`` given as a pool.json host entry.

        ``peers``: hosts it migrates with (both ways; one way in a directed pool); with
        ``group=True`` it joins every peer's group instead (edges to all of them, both ways).
        """
        if not isinstance(name, str) or not name:
            raise InputError("add_host needs a host name")
        host = host_from_entry(name, copy.deepcopy(spec), "<planner>", source_dir(self.pool.source),
                               defaults=self.pool.host_defaults)
        for peer in peers:
            if peer not in self.pool.hosts:
                raise InputError(f"add_host '{name}': no peer host '{peer}'" + close_names(peer, self.pool.hosts))
        self.pool.hosts[name] = host
        self.pool.graph.add_node(name)
        for peer in peers:
            self.pool.graph.add_edge(name, peer)
            if not self.pool.directed or group:
                self.pool.graph.add_edge(peer, name)
        self._result = None

    def remove_host(self, name: str) -> None:
        if name not in self.pool.hosts:
            raise InputError(f"remove_host: no host '{name}'" + close_names(name, self.pool.hosts))
        if len(self.pool.hosts) == 1:
            raise InputError("remove_host: a pool needs at least one host")
        del self.pool.hosts[name]
        self.pool.graph.remove_node(name)
        _drop_from_groups(self.pool, name)
        self._result = None

    def host(self, name: str) -> Host:
        return self.pool.hosts[name]

    def domain_of(self, name: str):
        """The answer for VMs started on host ``name``."""
        for d in self.solve().domains:
            if name in d.starts:
                return d
        raise InputError(f"no host '{name}'" + close_names(name, self.pool.hosts))
