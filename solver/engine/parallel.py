"""Domains solved elsewhere: worker processes on this machine, or any executor (dask).

A domain's report is a function of the pool, the domain, its requirements and the time
bound alone (a shared problem's optimum is unique, an infeasible domain's conflict is found
from its own hosts), so domains may be solved anywhere, in any grouping, and the reports
put back in domain order are byte-identical to one process solving them in turn.  Each
worker builds whole reports (optimum, independent check, protection, explanations): the
check runs where the answer is made, before anything is printed.

Work is handed out in runs of domains of alike host kinds (:func:`kindred_order`), a few
per worker, so that a worker's caches (residuals, obligations, Z3 terms) serve the domains
it solves and not the others', and the slowest run does not hold up the rest.  The
reports, and their text, are put back in domain order.
"""

from __future__ import annotations

import copyreg
import os
import sys
import threading
from contextlib import contextmanager
from types import MappingProxyType

from cpusolve.core.pool import Pool, Requirements
from cpusolve.domains.graph import Domain


def read_only(items: dict) -> MappingProxyType:
    return MappingProxyType(items)


#: DomainResult holds read-only mappings (guest_bugs); pickle them as what they wrap.
copyreg.pickle(MappingProxyType, lambda m: (read_only, (dict(m),)))

#: chunks per worker: enough to even out slow chunks, few enough to keep caches warm
CHUNKS_PER_WORKER = 8
#: ``solve_in_workers`` hands out 1/(GUIDE x processes) of the domains not yet handed out
#: (guided self-scheduling): big chunks while much is left, small ones where the
#: processes meet, so that none waits long for another's last chunk
GUIDE = 4
#: the smallest chunk ``solve_in_workers`` hands out
MIN_CHUNK = 2
#: chunks a forked worker has in hand (queued or being solved)
IN_HAND = 2
#: the interpreter's thread switch interval while workers run (sys.setswitchinterval)
SWITCH_S = 0.0002

# Set in the parent just before it forks its workers, read by them (never pickled): the
# work each span gets (:func:`_guided`).
_FORKED = None


def _chunks(n: int, parts: int) -> list[range]:
    size = max(1, -(-n // parts))
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


#: The worker's outcomes, kept across the chunks it solves (a fleet's domains share problems:
#: the benchmark pool's 2,000 domains pose 131); one per thread, as Z3 contexts are.
_WORKER = threading.local()
#: entries a long-lived worker (dask) keeps before it drops those recent chunks did not use
WORKER_CACHE_LIMIT = 100_000


def solve_chunk(pool: Pool, doms: list[Domain], first: int, req: Requirements, timeout: float,
                cache=None, numbers: list[int] | None = None) -> list:
    """Reports of ``doms`` (numbered from ``first``, or by ``numbers``), each with its own
    checked answer; ``cache`` holds outcomes solved before (a forked worker inherits its
    parent's)."""
    from cpusolve.encodings.catalog import catalog
    from cpusolve.engine.cache import SolveCache
    from cpusolve.engine.solve import _solve_domain

    if cache is None:
        cache = getattr(_WORKER, "cache", None)
        if cache is None or getattr(_WORKER, "pid", None) != os.getpid():
            cache = _WORKER.cache = SolveCache()
            _WORKER.pid = os.getpid()
    cat = catalog()
    if numbers is None:
        numbers = range(first, first + len(doms))
    out = [_solve_domain(pool, dom, index, req, timeout, cache, cat) for index, dom in zip(numbers, doms, strict=True)]
    if cache.size() > WORKER_CACHE_LIMIT:
        cache.end()
    return out


def _forked_work(span: tuple[int, int]):
    """In a forked worker: the parent's work on one span (:func:`_guided`)."""
    return _FORKED(span)


def _worker_start() -> None:
    """A worker leaves the interrupt to its parent and dies with it.

    The parent's handlers (cli._stop) print the one interrupted line and leave at once with
    ``os._exit``, killing its workers first (:func:`kill_workers`); a forked worker inherits
    the handlers, so a Ctrl-C (which reaches the whole process group) would print the line
    once per worker.  So a worker ignores SIGINT and takes the default for SIGTERM and
    SIGHUP.  A worker whose parent was killed outright would wait for work forever (it
    holds the writing end of its own task queue, so the queue never reports end of file),
    so a watchdog thread ends it when its parent is gone.  (Linux's PR_SET_PDEATHSIG is no
    use here: it fires when the *thread* that forked the worker ends, and the executor
    forks from whichever thread submits.)
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    parent = _PARENT[0]
    threading.Thread(target=_watch_parent, args=(parent,), name="cpusolve-watchdog", daemon=True).start()


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(WATCHDOG_S)
    os._exit(0)


#: how often a worker looks whether its parent is still there
WATCHDOG_S = 0.5
#: the process that forks workers (set just before it does)
_PARENT = [0]
#: executors whose workers are running, for kill_workers
_LIVE: list = []


def kill_workers() -> None:
    """Kill the running workers now (the parent is leaving through ``os._exit``)."""
    import signal

    for ex in list(_LIVE):
        for proc in list(getattr(ex, "_processes", {}).values()):
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except (OSError, AttributeError):
                pass


@contextmanager
def _worker_pool(workers: int):
    """``workers`` forked processes (:func:`_guided` forks only where the platform can) that
    leave the interrupt to this one and die with it (:func:`_worker_start`,
    :func:`kill_workers`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _PARENT[0] = os.getpid()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start) as ex:
        _LIVE.append(ex)
        try:
            yield ex
        finally:
            _LIVE.remove(ex)


def _failed(e: BaseException) -> None:
    """Workers could not run (a pids limit): warned, and the caller works in this process."""
    print(f"cpusolve: warning: worker processes failed ({type(e).__name__}: {e}); solving in one process",
          file=sys.stderr)


def solve_in_workers(pool: Pool, doms: list[Domain], req: Requirements, timeout: float,
                     jobs: int, cache=None, prerender=None, records: bool = True) -> list | None:
    """Every domain's report, from ``jobs`` processes: this one and ``jobs - 1`` forked
    workers (:func:`_guided`).  None when forking is not possible here (the caller solves
    in this process).  ``cache`` (outcomes the parent already has) is inherited by the
    workers through the fork, not sent.

    ``prerender`` (writers.json_out.JsonChunks) writes each chunk's text in the process
    that made its reports (``fragment``), and is handed the chunks here in domain order
    (``add``): writing the report is then shared out like solving, not done after it.
    ``records=False`` (with a ``prerender``) keeps the reports where they were made: only
    their text comes back, and each domain's ``solved``, which is then what is returned."""

    order = kindred_order(doms)

    def work(span: tuple[int, int]) -> tuple[list | tuple, object]:
        picked = order[span[0]:span[1]]
        out = solve_chunk(pool, [doms[i] for i in picked], 0, req, timeout, cache, [i + 1 for i in picked])
        fragment = None if prerender is None else prerender.fragment(out)
        return (out if records else tuple(d.solved for d in out)), fragment

    chunks = _guided(len(doms), jobs, work)
    if chunks is None:
        return None
    # back into domain order: each domain's result and where its text is
    out: list = [None] * len(doms)
    where: list = [None] * len(doms)
    for first, (results, fragment) in chunks.items():
        for k, (i, result) in enumerate(zip(order[first:first + len(results)], results, strict=True)):
            out[i] = result
            where[i] = (fragment, k)
    if prerender is not None:
        for i, (fragment, k) in enumerate(where):
            prerender.add_domain(fragment, k, out[i] if records else None)
    return out


def kindred_order(doms: list[Domain]) -> list[int]:
    """The domains' positions, domains of alike host kinds next to each other (by their
    kinds in :func:`~cpusolve.domains.kinds.type_order`), for :func:`solve_in_workers`.

    The processes take runs of this order (:func:`_guided`), so each meets the host kinds
    of its own domains: the memos of a host kind (its obligations, its protection
    readings, the residuals of its identities) are then filled by one process, not by
    every process that meets one of its domains (on the diverse benchmark pool, two
    processes that split the domains in pool order make 6.9 % more Python calls between
    them than one process, in this order 1.4 %: benchmarks/forked_halves.py)."""
    from cpusolve.domains.kinds import type_order

    kinds = {t for d in doms for t in d.types}
    rank = {t: r for r, t in enumerate(sorted(kinds, key=type_order))}
    return sorted(range(len(doms)), key=lambda i: tuple(rank[t] for t in doms[i].types))


def shared_map(fn, items: list, jobs: int) -> list | None:
    """``fn`` over ``items`` in order, by this process and ``jobs - 1`` forked workers
    (:func:`_guided`); None where fewer than two processes would run or forking is not
    possible (the caller then does the work in this process)."""
    chunks = _guided(len(items), jobs, lambda span: [fn(x) for x in items[span[0]:span[1]]])
    if chunks is None:
        return None
    return [r for first in sorted(chunks) for r in chunks[first]]


def _guided(n: int, jobs: int, work) -> dict[int, object] | None:
    """``work(span)`` over the spans of ``range(n)``, by this process and ``jobs - 1``
    forked workers, as {first index of the span: what work returned}.

    This process works too, rather than waiting: on a machine with ``jobs`` cores a waiting
    parent would only compete with its workers for them while it unpickles their results,
    and its caches are warm from reading the pool.  The workers take spans from the front,
    this process from the back; a feeder thread hands a worker its next span as soon as it
    finishes one (:data:`IN_HAND` each).  Spans shrink as what is left does
    (:data:`GUIDE`), so the processes finish close together.  ``work`` reaches the
    workers through the fork (:data:`_FORKED`), only the spans are sent.
    """
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    global _FORKED
    if "fork" not in multiprocessing.get_all_start_methods():
        return None  # the workers read the pool from the parent's memory
    workers = min(jobs, n, os.cpu_count() or 1)
    if workers < 2:
        return None
    chunks: dict[int, object] = {}
    futures: dict[int, object] = {}
    left = [0, n]  # not handed out yet: [left[0], left[1])
    lock = threading.Lock()
    in_hand = threading.Semaphore(IN_HAND * (workers - 1))
    stop = threading.Event()

    def take(front: bool) -> tuple[int, int] | None:
        """The next span from the front (the workers') or the back (this process's)."""
        with lock:
            lo, hi = left
            if lo >= hi or stop.is_set():
                return None
            size = max(MIN_CHUNK, (hi - lo) // (GUIDE * workers))
            if front:
                left[0] = min(hi, lo + size)
                return lo, left[0]
            left[1] = max(lo, hi - size)
            return left[1], hi

    failed: list[BaseException] = []

    def feed(ex) -> None:
        """Hand the workers spans from the front as they finish theirs.  A pool that broke
        (a worker died, or the parent is being interrupted and killed them) stops the
        feeding; the failure is raised in this process's thread, not printed by this one."""
        while not stop.is_set():
            in_hand.acquire()
            span = take(front=True)
            if span is None:
                return
            try:
                future = ex.submit(_forked_work, span)
            except Exception as e:  # BrokenProcessPool, RuntimeError (shut down), OSError (its pipe)
                failed.append(e)
                stop.set()
                return
            future.add_done_callback(lambda _: in_hand.release())
            futures[span[0]] = future

    _FORKED = work
    # This process's threads that receive the workers' results (concurrent.futures reads
    # a result from its pipe in a Python loop) wait for the interpreter lock at every step,
    # while this thread works; at the default 5 ms a step, a worker would wait for its
    # result to be taken in longer than it takes to make the next.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_S)
    try:
        with _worker_pool(workers - 1) as ex:
            feeder = threading.Thread(target=feed, args=(ex,), name="cpusolve-feeder", daemon=True)
            feeder.start()
            try:
                while (span := take(front=False)) is not None:
                    chunks[span[0]] = work(span)
                in_hand.release()  # the feeder may wait for a slot: let it see the end
                feeder.join()
                if failed:
                    raise failed[0]
                for i, f in futures.items():
                    chunks[i] = f.result()
            except BaseException:
                stop.set()
                in_hand.release()
                ex.shutdown(wait=True, cancel_futures=True)
                raise
    except (OSError, BrokenProcessPool) as e:
        _failed(e)
        return None
    finally:
        _FORKED = None
        sys.setswitchinterval(switch)
    return chunks


def solve_on_executor(pool: Pool, doms: list[Domain], req: Requirements, timeout: float, executor,
                      parts: int) -> list:
    """Every domain's report, computed by ``executor`` (a ``concurrent.futures.Executor``:
    for dask, ``distributed.Client(...).get_executor()``) in ``parts`` chunks.  The pool
    travels to the workers with each chunk (pickled); reports come back in domain order."""
    shared = pool
    if hasattr(executor, "scatter"):  # a distributed.Client: send the pool once to every worker
        shared = executor.scatter(pool, broadcast=True)
    futures = [executor.submit(solve_chunk, shared, doms[r.start:r.stop], r.start + 1, req, timeout)
               for r in _chunks(len(doms), parts)]
    return [r for f in futures for r in f.result()]
