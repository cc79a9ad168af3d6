"""Where one whole-CLI run's wall time goes, serial and parallel (run by run.py, by hand).

    python benchmarks/phases.py POOL.json -j 2 -o OUT.json     # prints one JSON line on stderr

Runs ``cpusolve POOL --format json -j N -o OUT`` in this process, as the console script
does, with a clock around the stages the parent runs: the imports, reading the pool, the
reachability sets (``domains``), the solve (one process: every domain's report in turn;
``-j``: the span in which this process and its workers solve and write the domains), and
what follows (one process: the JSON writer; ``-j``: joining the workers' text and writing
the report).  What ``-j`` can share out is the solve, and with it the writing of the
domains; the rest runs once, in the parent, and bounds the speed-up (Amdahl):
``bound = T1 / (serial + shared / N)``.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()
MARKS: dict[str, float] = {}


def _mark(name: str) -> None:
    MARKS.setdefault(name, time.perf_counter() - T0)


def _wrap(owner, name: str, label: str) -> None:
    inner = getattr(owner, name)

    def timed(*args, **kwargs):
        _mark(f"{label}_start")
        try:
            return inner(*args, **kwargs)
        finally:
            MARKS[f"{label}_end"] = time.perf_counter() - T0
    setattr(owner, name, timed)


def main(argv: list[str]) -> dict:
    import cpusolve.api as api
    import cpusolve.cli as cli
    import cpusolve.engine.parallel as parallel
    import cpusolve.engine.solve as engine
    import cpusolve.writers as writers
    import cpusolve.writers.json_out as json_out

    _mark("imported")
    _wrap(api, "load_pool", "load")
    _wrap(engine, "domains", "domains")
    _wrap(api, "solve", "solve")  # one process
    _wrap(parallel, "_guided", "shared")  # -j: this process and its workers
    _wrap(writers, "render", "write")
    _wrap(json_out.JsonChunks, "render_written", "write")
    cli._leave = lambda code: None  # the console script leaves through os._exit
    sys.argv = ["cpusolve", *argv]
    try:
        cli.main(standalone_mode=False)
    except SystemExit:
        pass
    end = time.perf_counter() - T0
    m = MARKS
    if "shared_start" in m:  # -j
        shared = m["shared_end"] - m["shared_start"]
        before = m["shared_start"]
    else:
        shared = m["solve_end"] - m["domains_end"]
        before = m["domains_end"]
    after = end - before - shared
    return {"wall_s": end, "imports_s": m["imported"], "load_s": m["load_end"] - m["load_start"],
            "domains_s": m["domains_end"] - m["domains_start"], "before_s": before, "shared_s": shared,
            "after_s": after, "write_s": m["write_end"] - m["write_start"]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), file=sys.stderr)
