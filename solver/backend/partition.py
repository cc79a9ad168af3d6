"""Z3 on the split problem (problem.partition): the exact lexicographic optimum.

Each host gets the index of its part's first host (so one partition has one labelling);
a part is connected when every non-first host has a neighbour in the part one step
closer to the first host; the part's kinds avoid every conflict, and its answer size is
read from the table of feasible kind sets.  Every call carries a time bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from cpusolve.backend.solve import ms, run
from cpusolve.problem.partition import PartitionProblem, canonical


@dataclass(frozen=True)
class PartitionAnswer:
    status: str  # "sat" | "timeout" | "unsat"
    labels: tuple[int, ...] = ()


def best_partition(problem: PartitionProblem, timeout: float, max_parts: int | None = None,
                   min_parts: int = 1) -> PartitionAnswer:
    """The optimum over partitions of ``min_parts`` to ``max_parts`` parts."""
    ctx = z3.Context()
    n = len(problem.hosts)
    lab = [z3.Int(f"lab{i}", ctx) for i in range(n)]
    dist = [z3.Int(f"dist{i}", ctx) for i in range(n)]
    opt = z3.Optimize(ctx=ctx)
    opt.set("timeout", ms(timeout))
    opt.set("priority", "lex")
    near: list[list[int]] = [[] for _ in range(n)]
    for a, b in problem.pairs:
        near[a].append(b)
        near[b].append(a)
    zero = z3.IntVal(0, ctx)
    for i in range(n):
        opt.add(lab[i] >= 0, lab[i] <= i)
        root = lab[i] == i
        # a host names a part's first host, which names itself
        for j in range(i):
            opt.add(z3.Implies(lab[i] == j, lab[j] == j))
        opt.add(z3.Implies(root, dist[i] == 0))
        steps = [z3.And(lab[j] == lab[i], dist[j] == dist[i] - 1) for j in near[i]]
        opt.add(z3.Implies(z3.Not(root), z3.And(dist[i] >= 1, dist[i] < n,
                                                z3.Or(steps) if steps else z3.BoolVal(False, ctx))))
    kinds = problem.kinds
    present = [[z3.Or([lab[i] == c for i in range(n) if problem.kind[i] == k] or [z3.BoolVal(False, ctx)])
                for c in range(n)] for k in range(kinds)]
    for conflict in problem.conflicts:
        for c in range(n):
            opt.add(z3.Not(z3.And([present[k][c] for k in sorted(conflict)])))
    value = []
    for c in range(n):
        size = zero
        for kset, count in sorted(problem.features.items(), key=lambda kv: sorted(kv[0])):
            shape = z3.And([present[k][c] if k in kset else z3.Not(present[k][c]) for k in range(kinds)])
            size = z3.If(shape, z3.IntVal(count, ctx), size)
        value.append(size)
    parts = z3.Sum([z3.If(lab[i] == i, 1, 0) for i in range(n)])
    if max_parts is not None:
        opt.add(parts <= max_parts)
    opt.add(parts >= min_parts)
    opt.minimize(parts)
    opt.maximize(z3.Sum([problem.weight[i] * z3.Sum([z3.If(lab[i] == c, value[c], zero) for c in range(i + 1)])
                         for i in range(n)]))
    opt.minimize(z3.Sum([z3.If(lab[a] != lab[b], 1, 0) for a, b in problem.pairs] or [zero]))
    status = run(opt)
    if status != "sat":
        return PartitionAnswer(status)
    model = opt.model()
    return PartitionAnswer("sat", canonical(model.eval(x, model_completion=True).as_long() for x in lab))
