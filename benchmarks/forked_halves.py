"""What two `-j` processes repeat: all domains in one forked child against halves in two.

    python benchmarks/forked_halves.py POOL.json

Reads the pool once, then forks (as ``-j`` forks after reading) one child that solves every
domain, and pairs of children that solve two halves of the domains, one child after the
other, each with a fresh cache: the halves in pool order, and in the order ``-j`` hands
them out (engine.parallel.kindred_order).  It counts the Python calls each child makes
(cProfile): a count, so the machine's speed from minute to minute (a fifth and more on this
VM) does not move it.  The halves' sum minus the whole is what two processes splitting the
domains that way do twice (memos both fill).  Run by hand (benchmarks/README.md, item 21).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys

from cpusolve.api import load_pool
from cpusolve.domains.graph import domains
from cpusolve.engine.cache import SolveCache
from cpusolve.engine.collector import collection_paused
from cpusolve.engine.parallel import kindred_order, solve_chunk


def child_calls(pool, doms, part: list[int]) -> int:
    """Python calls a forked child makes solving the domains ``part`` (in that order)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        with collection_paused():
            cache = SolveCache()
            profile = cProfile.Profile()
            profile.enable()
            for i in part:
                solve_chunk(pool, [doms[i]], i + 1, pool.requirements, 30.0, cache)
            profile.disable()
            os.write(write, str(pstats.Stats(profile).total_calls).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    value = int(os.read(read, 64).decode())
    os.close(read)
    return value


def main() -> None:
    pool = load_pool(sys.argv[1])
    doms = domains(pool)
    every = list(range(len(doms)))
    half = len(every) // 2
    kindred = kindred_order(doms)
    whole = child_calls(pool, doms, every)
    print(f"all domains in one process: {whole / 1e6:.2f} M calls", flush=True)
    for name, order in (("pool order", every), ("kindred order (-j)", kindred)):
        calls = child_calls(pool, doms, order[:half]) + child_calls(pool, doms, order[half:])
        print(f"two halves, {name}: {calls / 1e6:.2f} M calls ({(calls - whole) / whole:+.1%})", flush=True)


if __name__ == "__main__":
    main()
