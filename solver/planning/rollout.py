"""``cpusolve rollout``: the order of host updates and guest CPU changes in which every
running guest stays runnable and protected on every host it may reach, at every step.

Model (README "Rollout").  A guest keeps its CPU while it runs; it can change CPU only at
a reboot, which the plan schedules between host steps.  While a host is updated, a guest
that may reach it must be safe on the host as it was and as it will be, and on every other
host it may reach as they are then.  Updated hosts fall into waves: hosts with the same
facts before and after, reached by the same guests.  Updating one wave at a time loses
nothing: given any order of single hosts that works, the order of waves by when each wave
starts works too (each of its states holds a subset of the kinds of the corresponding state
of the given order, and "some CPU is safe on these kinds" only gets easier on subsets).
Waves that no guest links are independent; within a linked set every order is searched
(depth first, dead sets of done waves remembered), so "impossible" is a proof; a search
that runs out of :data:`SEARCH_BUDGET` steps says "not found", which is not one.

Every plan is replayed host by host by the independent checker (verify.fastcheck) before
it is printed: every guest, every host it may reach, at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from cpusolve.core.guest import GuestCpu, qemu_cpu_arg
from cpusolve.core.hosts import HostFacts, HostRef
from cpusolve.core.pool import Pool
from cpusolve.domains.graph import domains
from cpusolve.domains.kinds import HostKinds
from cpusolve.encodings.catalog import catalog
from cpusolve.engine.cache import SolveCache
from cpusolve.engine.optimize import DEFAULT_TIMEOUT_S, nearest
from cpusolve.engine.solve import domain_requirements
from cpusolve.errors import InternalError
from cpusolve.inputs.guests_file import GuestSpec
from cpusolve.planning.audit import as_libvirt
from cpusolve.planning.changes import Rollout, plan_changes
from cpusolve.planning.kindsets import KindAnswers
from cpusolve.report.explain import conflicts_text
from cpusolve.report.rollout import GuestImpact, RolloutResult, Step
from cpusolve.verify.checker import problems
from cpusolve.verify.fastcheck import FastChecker

#: steps (a wave tried next) the order search of one set of linked waves may take: it
#: remembers dead sets of done waves, so a search that ends has tried every order, and
#: "impossible" is then a proof; one that runs out says "not found"
SEARCH_BUDGET = 200_000


@dataclass(frozen=True)
class Wave:
    id: int
    hosts: tuple[str, ...]
    old: HostFacts | None
    new: HostFacts | None
    action: str
    changes: tuple[str, ...]


@dataclass
class Running:
    """A checked guest: its CPU, where it runs, every host it may reach during the rollout."""

    spec: GuestSpec
    cpu: GuestCpu
    reach: frozenset[str]
    moved_to: str | None = None
    #: (kinds of hosts no wave touches, the waves it reaches): guests with equal profiles
    #: pose equal constraints on the order
    profile: tuple = ()


@dataclass
class Checks:
    """The independent checker, one per requirement set (each host's QEMU/libvirt names)."""

    req: object
    fast: dict = field(default_factory=dict)

    def safe(self, cpu: GuestCpu, facts: HostFacts) -> bool:
        req = domain_requirements(self.req, (facts,))
        checker = self.fast.get(req)
        if checker is None:
            checker = self.fast[req] = FastChecker(catalog(), req, host_fms_rule=False)
        return checker.check(cpu, facts)

    def safe_on(self, cpu: GuestCpu, kinds) -> bool:
        return all(self.safe(cpu, k) for k in kinds)


def rollout(pool: Pool, guests: list[GuestSpec], changes, timeout: float = DEFAULT_TIMEOUT_S) -> RolloutResult:
    plan = plan_changes(pool, changes)
    req = pool.requirements
    answers = KindAnswers(pool, SolveCache(), timeout)
    checks = Checks(req)
    reach_before = {s: d.hosts for d in domains(pool) for s in d.starts}
    reach_after = {s: d.hosts for d in domains(plan.after) for s in d.starts}
    impacts: dict[str, GuestImpact] = {}
    running: list[Running] = []
    for g in guests:
        if g.error is not None or g.mode is not None:
            impacts[g.name] = GuestImpact(g.name, g.source, "not-checked", g.host,
                                          why=g.error or f"{g.mode}: the guest keeps its start host's CPU, which "
                                          "cpusolve cannot vouch for across a change (give it a custom model: "
                                          "cpusolve apply)")
            continue
        r, moved = _reach(g, plan, reach_before, reach_after)
        if r is None:
            impacts[g.name] = GuestImpact(g.name, qemu_cpu_arg(g.cpu), "blocked", g.host,
                                          why=f"it runs on {g.host}, which is retired, and may migrate nowhere else")
            continue
        running.append(Running(g, g.cpu, r, moved))
    waves = _waves(plan, running)
    wave_of = {h: w for w in waves for h in w.hosts}
    for run in running:
        fixed = frozenset(_facts_of(plan, h) for h in run.reach if h not in wave_of) - {None}
        run.profile = (fixed, tuple(sorted({wave_of[h].id for h in run.reach if h in wave_of})))
    order, status, blockers, method = _order(waves, running, answers, plan)
    if status != "ok":
        for run in running:
            name = run.spec.name
            if name in blockers:
                impacts[name] = GuestImpact(name, qemu_cpu_arg(run.cpu), "blocked", run.spec.host,
                                            why=blockers[name])
            elif run.profile[1]:  # it meets an update, but there is no plan to meet it in
                impacts[name] = GuestImpact(name, qemu_cpu_arg(run.cpu), "not-planned", run.spec.host,
                                            breaks=_breaks(run, plan, checks, req),
                                            why="no plan: the blocked guests keep every order from working")
            else:
                impacts[name] = GuestImpact(name, qemu_cpu_arg(run.cpu), "unaffected", run.spec.host)
        return _result(pool, changes, status, guests, impacts, (), blockers, 0, method)
    by_id = {w.id: w for w in waves}
    cpu_steps: dict[int, list[tuple[str, GuestCpu]]] = {}
    new_cpus: dict[str, list[GuestCpu]] = {}
    choose = _chooser(answers, req, timeout)
    today_unsafe = set()
    for run in running:
        fixed, touched = run.profile
        initial = fixed | {by_id[k].old for k in touched} - {None}
        if not checks.safe_on(run.cpu, initial):
            today_unsafe.add(run.spec.name)
        seq = [k for k in order if k in set(touched)]
        needs = [_kinds(run.profile, by_id, set(order[:order.index(k)]), k) for k in seq]
        cur, i = run.cpu, 0
        while i < len(seq):
            if checks.safe_on(cur, needs[i]):
                i += 1
                continue
            union, j = set(needs[i]), i
            while j + 1 < len(seq) and answers.feasible(frozenset(union | needs[j + 1])):
                union |= needs[j + 1]
                j += 1
            cur = choose(frozenset(union), cur)
            new_cpus.setdefault(run.spec.name, []).append(cur)
            cpu_steps.setdefault(seq[i], []).append((run.spec.name, cur))
            i = j + 1
    steps, new_at = [], {}
    for k in order:
        w = by_id[k]
        if k in cpu_steps:
            chosen = sorted(cpu_steps[k], key=lambda gc: gc[0])
            new_at[len(steps)] = chosen
            steps.append(Step("change-cpus", guests=tuple((g, qemu_cpu_arg(c)) for g, c in chosen),
                              threads=tuple(c.threads for _, c in chosen)))
        movers = tuple(sorted((r.spec.name, r.moved_to) for r in running if r.moved_to and r.spec.host in w.hosts))
        if movers:
            steps.append(Step("move", guests=movers))
        steps.append(Step(w.action, hosts=w.hosts, changes=w.changes))
    states = replay(pool, plan, running, steps, new_at, checks, today_unsafe)
    for run in running:
        name = run.spec.name
        cpus = new_cpus.get(name, [])
        status_g = "cpu-change" if cpus else "moved" if run.moved_to else "unaffected"
        impacts[name] = GuestImpact(name, qemu_cpu_arg(run.cpu), status_g, run.spec.host,
                                    breaks=_breaks(run, plan, checks, req),
                                    new_cpus=tuple(qemu_cpu_arg(c) for c in cpus),
                                    new_threads=tuple(c.threads for c in cpus),
                                    new_libvirt=tuple(_libvirt(c, run, plan) for c in cpus)
                                    if run.spec.kind == "libvirt" else (), moved_to=run.moved_to,
                                    unsafe_today=name in today_unsafe,
                                    why="already not runnable or not protected somewhere it may reach (cpusolve "
                                    "audit): safe from its first CPU change on" if name in today_unsafe else "")
    return _result(pool, changes, "ok", guests, impacts, tuple(steps), {}, states, method)


def _result(pool, changes, status, guests, impacts, steps, blockers, states, method) -> RolloutResult:
    notes = ["hosts of one update step may go in any order; a host that reboots for its update is "
             "evacuated first: its guests are safe on every other host they may reach"] if status == "ok" else []
    return RolloutResult(pool.source, tuple(changes), status, tuple(impacts[g.name] for g in guests), steps,
                         tuple(f"{g}: {why}" for g, why in sorted(blockers.items())), states, method,
                         tuple(notes))


def _facts_of(plan: Rollout, host: str) -> HostFacts | None:
    """An untouched host's facts (the same before and after)."""
    h = plan.before.hosts.get(host) or plan.after.hosts.get(host)
    return h.facts if h is not None else None


def _reach(g: GuestSpec, plan: Rollout, before, after) -> tuple[frozenset[str] | None, str | None]:
    """Every host the guest may reach before, during and after the change; and where it
    moves first when its host is retired (None, None: nowhere)."""
    if g.host is None:
        return frozenset(g.domain), None
    update = plan.updates.get(g.host)
    if update is not None and update.new is None:  # its host is retired: it moves first
        retired = {h for h, u in plan.updates.items() if u.new is None}
        targets = [h for h in before[g.host] if h not in retired]
        if not targets:
            return None, None
        target = targets[0]
        return frozenset(before[g.host]) | frozenset(after.get(target, ())), target
    return frozenset(before[g.host]) | frozenset(after.get(g.host, ())), None


def _waves(plan: Rollout, running: list[Running]) -> list[Wave]:
    """Updated hosts grouped by their facts before and after and by the guests that may
    reach them (so that each guest meets all of a wave or none of it)."""
    reachers: dict[str, list[int]] = {h: [] for h in plan.updates}
    for i, r in enumerate(running):
        for h in r.reach:
            if h in reachers:
                reachers[h].append(i)
    groups: dict[tuple, list[str]] = {}
    for h, u in sorted(plan.updates.items()):
        groups.setdefault((u.old, u.new, tuple(reachers[h])), []).append(h)
    out = []
    for i, ((old, new, _), hosts) in enumerate(sorted(groups.items(), key=lambda kv: kv[1][0])):
        specs = tuple(dict.fromkeys(s for h in hosts for s in plan.updates[h].changes))
        out.append(Wave(i, tuple(hosts), old, new, plan.updates[hosts[0]].action, specs))
    return out


def _kinds(profile, by_id, done: set[int], k: int) -> frozenset[HostFacts]:
    """The kinds a guest of ``profile`` may meet while wave ``k`` is updated, ``done`` before."""
    fixed, touched = profile
    out = set(fixed)
    for j in touched:
        w = by_id[j]
        if j == k:
            out.update((w.old, w.new))
        else:
            out.add(w.new if j in done else w.old)
    out.discard(None)
    return frozenset(out)


def _order(waves: list[Wave], running: list[Running], answers: KindAnswers, plan: Rollout):
    """An order of the waves, or why there is none: (order, status, {guest: why}, method)."""
    by_id = {w.id: w for w in waves}
    profiles: dict[tuple, list[str]] = {}
    for run in running:
        profiles.setdefault(run.profile, []).append(run.spec.name)
    touching: dict[int, list[tuple]] = {w.id: [] for w in waves}
    for p in profiles:
        for k in p[1]:
            touching[k].append(p)

    def allowed(done: frozenset[int], k: int, skip=frozenset()) -> bool:
        """Whether every guest that meets wave ``k`` has some safe CPU while it is updated."""
        for p in touching[k]:
            if p in skip:
                continue
            kinds = _kinds(p, by_id, set(done), k)
            if not kinds or not answers.feasible(kinds):
                return False
        return True

    order: list[int] = []
    method = "exact"
    blockers: dict[str, str] = {}
    status = "ok"
    for group in _linked(waves, profiles):
        try:
            found = _search(group, allowed, SEARCH_BUDGET)
        except OutOfBudget:
            method = f"search stopped after {SEARCH_BUDGET:,} steps"
            status = "not-found" if status == "ok" else status
            for p in {p for k in group for p in touching[k]}:
                for name in profiles[p]:
                    blockers[name] = (f"no order of its hosts' {len(group)} updates found within "
                                      f"{SEARCH_BUDGET:,} search steps (not a proof)")
            continue
        if found is None:
            status = "impossible"
            blockers.update(_why(group, profiles, by_id, answers, allowed, plan))
            continue
        order.extend(found)
    return order, status, blockers, method


def _linked(waves: list[Wave], profiles) -> list[list[int]]:
    """Waves joined by a guest that reaches both, as sets in wave order."""
    g = nx.Graph()
    g.add_nodes_from(w.id for w in waves)
    for _, touched in profiles:
        g.add_edges_from(zip(touched, touched[1:], strict=False))
    return sorted(sorted(c) for c in nx.connected_components(g))


def _search(group: list[int], allowed, budget: int | None = None) -> list[int] | None:
    """The first order (waves tried in order) in which every step is allowed; None after
    every order was tried (dead sets of done waves remembered).  With ``budget`` (steps
    tried), :class:`OutOfBudget` when it runs out first."""
    dead: set[frozenset[int]] = set()
    full = len(group)
    left = [budget]

    def go(done: frozenset[int], order: list[int]) -> list[int] | None:
        if len(done) == full:
            return order
        if done in dead:
            return None
        for k in group:
            if k in done:
                continue
            if left[0] is not None:
                left[0] -= 1
                if left[0] < 0:
                    raise OutOfBudget
            if allowed(done, k):
                found = go(done | {k}, [*order, k])
                if found is not None:
                    return found
        dead.add(done)
        return None

    return go(frozenset(), [])


class OutOfBudget(Exception):
    """The order search tried :data:`SEARCH_BUDGET` steps without an answer either way."""


def _why(group, profiles, by_id, answers: KindAnswers, allowed, plan: Rollout) -> dict[str, str]:
    """Which guests make every order of ``group`` impossible, and why."""
    names = _names_by_facts(plan)
    mine = [p for p in profiles if set(p[1]) & set(group)]
    out: dict[str, str] = {}
    for p in mine:
        waves = [k for k in group if k in p[1]]

        def alone(done, k, p=p):
            kinds = _kinds(p, by_id, set(done), k)
            return bool(kinds) and answers.feasible(kinds)

        if _search(waves, alone) is not None:
            continue
        fixed, touched = p
        final = frozenset(set(fixed) | {by_id[j].new for j in touched} - {None})
        if not final or not answers.feasible(final):
            # whatever the order: once every change is made its hosts share no answer
            text = f"after the change, {_conflict(final, answers, names)}"
        else:
            reasons = []
            for k in waves:
                kinds = _kinds(p, by_id, set(), k)
                if alone(frozenset(), k):
                    continue
                verb = {"add": "adding", "remove": "retiring"}.get(by_id[k].action, "updating")
                reasons.append(f"{verb} {_hosts(by_id[k].hosts)}{' first' if len(waves) > 1 else ''}: "
                               f"{_conflict(kinds, answers, names)}")
            text = "; ".join(reasons) if len(reasons) == len(waves) else (
                f"every order of the {len(waves)} updates it may meet fails (exhaustive search)"
                + (": " + "; ".join(reasons) if reasons else ""))
        for name in profiles[p]:
            out[name] = text
    if out:
        return out
    # no guest alone blocks: the smallest set of guests whose needs no order meets together
    keep = list(mine)
    for p in list(mine):
        trial = [q for q in keep if q != p]
        skip = frozenset(q for q in mine if q not in trial)
        if _search(group, lambda done, k, skip=skip: allowed(done, k, skip)) is None:
            keep = trial
    names = sorted(n for p in keep for n in profiles[p])
    for name in names:
        out[name] = ("each alone has an order, but not together: " + ", ".join(names)
                     + " need the updates in orders that exclude each other")
    return out


def _names_by_facts(plan: Rollout) -> dict[HostFacts, list[HostRef]]:
    """Every host before and after the change by its facts, for conflict texts (a host as
    it will be is named "(after)")."""
    out: dict[HostFacts, dict[str, HostRef]] = {}
    for pool in (plan.before, plan.after):
        for h in pool.hosts.values():
            name = h.name + (" (after)" if pool is plan.after and h.name in plan.updates else "")
            out.setdefault(h.facts, {}).setdefault(h.name, HostRef(name, h.count))
    return {facts: sorted(refs.values(), key=lambda r: r.name) for facts, refs in out.items()}


def _conflict(kinds: frozenset[HostFacts], answers: KindAnswers, names) -> str:
    if not kinds:
        return "no host left to run on"
    types = answers.order(kinds)
    vendors = sorted({t.vendor for t in types})
    if len(vendors) > 1:
        return ("it could reach hosts of " + " and ".join(vendors) + " at once (live migration across "
                "vendors is refused)")
    out = answers.outcome(kinds)
    if out is None or not out.core:
        return "no CPU is runnable and protected on all of its hosts then"
    refs = tuple(tuple(names.get(t, [])[:4]) for t in types)
    return "; ".join(c.text for c in conflicts_text(HostKinds(types, refs), out.core))


def _hosts(hosts, limit: int = 4) -> str:
    shown = ", ".join(hosts[:limit])
    return shown + (f" and {len(hosts) - limit} more" if len(hosts) > limit else "")


def _chooser(answers: KindAnswers, req, timeout: float):
    """The CPU a guest changes to for a run of steps: its own model with the fewest bits
    changed (cpusolve audit's repair), else the kinds' best answer."""
    memo: dict = {}

    def choose(kinds: frozenset[HostFacts], current: GuestCpu) -> GuestCpu:
        key = (kinds, current)
        if key not in memo:
            types = answers.order(kinds)
            vendor = types[0].vendor
            fixed = None
            if current.identity()[0] == vendor:
                fixed = nearest(catalog(), vendor, types, domain_requirements(req, types), current, timeout)
            if fixed is None:
                out = answers.outcome(kinds)
                fixed = out.guest if out is not None else None
            if fixed is None:
                raise InternalError("a feasible set of host kinds gave no guest CPU")
            memo[key] = fixed
        return memo[key]

    return choose


def _libvirt(cpu: GuestCpu, run: Running, plan: Rollout) -> str:
    """The <cpu> a libvirt guest's domain XML needs for ``cpu``, for the oldest libvirt of
    the hosts it may reach (as cpusolve audit gives its fixes)."""
    types = {h.facts for p in (plan.before, plan.after) for name, h in p.hosts.items() if name in run.reach}
    return as_libvirt(cpu, run.spec, tuple(types)) or ""


def _breaks(run: Running, plan: Rollout, checks: Checks, req) -> tuple[str, ...]:
    """What the change would break for the guest's CPU as it is: the checker's findings on
    each host it may reach after the change, hosts with the same finding together."""
    found_on: dict[str, list[str]] = {}
    for h in sorted(run.reach):
        if h not in plan.updates or plan.updates[h].new is None:
            continue
        facts = plan.updates[h].new
        if checks.safe(run.cpu, facts):
            continue
        found = problems(catalog(), (facts,), domain_requirements(req, (facts,)), run.cpu, [h])
        missing = sorted({p.feature or p.text for p in found if p.kind in ("missing", "vendor")})
        unsafe = sorted({p.bug for p in found if p.unsafe and p.bug})
        parts = []
        if missing:
            parts.append("cannot run there (lacks " + ", ".join(missing) + ")")
        if unsafe:
            parts.append("not protected there against " + ", ".join(unsafe))
        if not parts:
            parts = [p.text for p in found[:2]]
        found_on.setdefault("; ".join(parts), []).append(h)
    return tuple(f"{_hosts(hosts, 6)} after the change: {text}" for text, hosts in found_on.items())


def replay(pool: Pool, plan: Rollout, running: list[Running], steps, new_at: dict, checks: Checks,
           today_unsafe) -> int:
    """Apply the steps host by host and check every guest that may reach each host as it
    changes (its CPU then, on the host before and after), guest changes and moves where they
    happen, and the final state: raises InternalError on any guest left unsafe."""
    facts = {h: x.facts for h, x in pool.hosts.items()}
    cpu = {r.spec.name: r.cpu for r in running}
    live = {r.spec.name for r in running if r.spec.name not in today_unsafe}
    reachers: dict[str, list[Running]] = {}
    for r in running:
        for h in r.reach:
            reachers.setdefault(h, []).append(r)
    states = 0

    def check(r: Running, host: str, f: HostFacts | None, when: str) -> None:
        if f is None or r.spec.name not in live:
            return
        if not checks.safe(cpu[r.spec.name], f):
            raise InternalError(f"rollout plan rejected by the checker: guest {r.spec.name} "
                                f"({qemu_cpu_arg(cpu[r.spec.name])}) on {host} {when}")

    def check_all(r: Running, when: str) -> None:
        for h in r.reach:
            check(r, h, facts.get(h), when)

    for r in running:
        check_all(r, "before the rollout")
    by_name = {r.spec.name: r for r in running}
    for n, step in enumerate(steps, start=1):
        if step.action == "change-cpus":
            for g, new_cpu in new_at[n - 1]:
                cpu[g] = new_cpu
                live.add(g)
                check_all(by_name[g], f"after its CPU change (step {n})")
            continue
        if step.action == "move":
            continue  # the guest's reach already holds its new host's (checked with every host)
        for h in step.hosts:
            new = plan.after.hosts[h].facts if h in plan.after.hosts else None
            for r in reachers.get(h, ()):
                check(r, h, new, f"as it is updated (step {n})")
            facts[h] = new
            states += 1
    for r in running:
        check_all(r, "after the rollout")
    return states
