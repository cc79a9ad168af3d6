"""``check(guest, host)`` on integer bitsets, for schedulers that ask it thousands of times.

What ``cpusolve.checker.check_answer(cat, (host,), req, guest)`` decides, split into

* per guest, once (cached): every check that does not depend on the host (model, flags,
  dependencies, requirements: ``check_answer`` against a host that has exactly the
  guest's features and no bugs), the visible features as a bitset, and the set of bugs
  whose obligations the guest meets (``ok_bugs``: truthful under every kernel of ``req``,
  and under policy strict the mechanism present), also a bitset;
* per host, once (cached): vendor, features and (unwaived) bugs as bitsets, f/m/s, rsba;
* per pair: a handful of integer operations.

Every per-guest and per-host fact comes from the checker itself (``check_answer``, the
obligations and the concrete rule interpreter), so the fast path cannot disagree with it;
``tests/test_fastcheck.py`` and ``benchmarks/run.py`` assert equal verdicts on many pairs.
``cpusolve.check()`` uses it for the verdict and asks the checker for reasons only when a
pair fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.core.hosts import HostFacts
from cpusolve.encodings.rules import load_rules
from cpusolve.encodings.safety import obligations
from cpusolve.verify.checker import check_answer

#: guests (and hosts) whose bitsets are kept; beyond it they are computed again
MAX_SEEN = 1 << 16


@dataclass(frozen=True, slots=True)
class GuestBits:
    static_ok: bool
    vendor: str
    visible: int
    fms: tuple[int, int, int] | None
    ok_bugs: int
    shows_rsba: bool


@dataclass(frozen=True, slots=True)
class HostBits:
    vendor: str
    features: int
    fms: tuple[int, int, int]
    bugs: int
    rsba: bool


class FastChecker:
    def __init__(self, cat, req, host_fms_rule: bool = True) -> None:
        #: check_answer's rule "a shown f/m/s is the model's or the host's"; the public
        #: check() does not apply it to a single host
        self.host_fms_rule = host_fms_rule
        self.cat = cat
        self.req = req
        self._fbit: dict[str, int] = {}
        bugs: set[str] = set()
        for k in req.kernels:
            t = load_rules(k)
            bugs |= set(t.bug_rules) | set(t.bugs)
        self.bug_names = sorted(bugs)
        self._bbit = {b: 1 << i for i, b in enumerate(self.bug_names)}
        self._guests: dict = {}
        self._hosts: dict = {}

    def _mask(self, names) -> int:
        m = 0
        fb = self._fbit
        for n in names:
            b = fb.get(n)
            if b is None:
                b = fb[n] = 1 << len(fb)
            m |= b
        return m

    def guest(self, g) -> GuestBits:
        hit = self._guests.get(g)
        if hit is not None:
            return hit
        if len(self._guests) >= MAX_SEEN:  # a long-lived scheduler sees guests come and go
            self._guests.clear()
        cat, req = self.cat, self.req
        visible = g.visible()
        vendor, fam, mod, step = g.identity()
        mirror = HostFacts(vendor=vendor, family=fam, model=mod, stepping=step,
                           features=visible, bugs=frozenset())
        static_ok = not check_answer(cat, (mirror,), req, g)
        view = g.view()
        ok = 0
        for bug in self.bug_names:
            one = HostFacts(vendor=vendor, family=fam, model=mod, stepping=step,
                            features=visible, bugs=frozenset({bug}))
            if all(ob.holds(view) for ob in obligations(vendor, (one,), req.kernels, req.policy, req.waive)
                   if ob.kind != "hint"):
                ok |= self._bbit[bug]
        shows_rsba = "rsba" in view.features and "arch-capabilities" in view.features
        out = GuestBits(static_ok, vendor, self._mask(visible), g.fms, ok, shows_rsba)
        self._guests[g] = out
        return out

    def host(self, h: HostFacts) -> HostBits:
        hit = self._hosts.get(h)
        if hit is not None:
            return hit
        if len(self._hosts) >= MAX_SEEN:
            self._hosts.clear()
        bugs = 0
        for b in h.bugs:
            if b not in self.req.waive and b in self._bbit:
                bugs |= self._bbit[b]
        out = HostBits(h.vendor, self._mask(h.features), h.fms, bugs, "rsba" in h.features)
        self._hosts[h] = out
        return out

    def check(self, g, h) -> bool:
        """Whether guest ``g`` is safe on host ``h`` (same verdict as ``not check_answer``)."""
        gb = self._guests.get(g) or self.guest(g)
        hb = self._hosts.get(h) or self.host(h)
        return self.check_bits(gb, hb)

    def check_bits(self, gb: GuestBits, hb: HostBits) -> bool:
        """The per-pair work alone, on precomputed bitsets."""
        return (gb.static_ok and gb.vendor == hb.vendor
                and not (gb.visible & ~hb.features)
                and (gb.fms is None or gb.fms == hb.fms or not self.host_fms_rule)
                and not (hb.bugs & ~gb.ok_bugs)
                and (not hb.rsba or gb.shows_rsba))
