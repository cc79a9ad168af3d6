"""``check(guest, host)`` for schedulers that ask it thousands of times.

What ``cpusolve.verify.checker.check_answer(cat, (host,), req, guest)`` decides, split into

* per guest, once (cached): every check that does not depend on the host (model, flags,
  dependencies, requirements: ``check_answer`` against a host that exposes exactly the
  guest's features and has no bugs) and the visible features as a bitset;
* per host, once (cached): vendor and features as bitsets, f/m/s;
* per (guest, host kind), once (cached): whether the guest is protected there (the
  protection obligations depend on the host's silicon, microcode, kernel, TSX and SMT);
* per pair after that: a handful of integer operations and one dictionary lookup.

Every fact comes from the checker itself (``check_answer``, the obligations and the
concrete interpreters), so the fast path cannot disagree with it;
``tests/test_fastcheck.py`` and ``benchmarks/run.py`` assert equal verdicts on many pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpusolve.core.bits import BitNames
from cpusolve.core.hosts import HostFacts
from cpusolve.encodings.safety import obligations
from cpusolve.verify.checker import check_answer

#: guests, hosts and pairs whose verdicts are kept; beyond it they are computed again
MAX_SEEN = 1 << 16


@dataclass(frozen=True, slots=True)
class GuestBits:
    static_ok: bool
    vendor: str
    visible: int
    fms: tuple[int, int, int] | None


@dataclass(frozen=True, slots=True)
class HostBits:
    vendor: str
    features: int
    fms: tuple[int, int, int]


class FastChecker:
    def __init__(self, cat, req, host_fms_rule: bool = True) -> None:
        #: check_answer's rule "a shown f/m/s is the model's or the host's"; the public
        #: check() does not apply it to a single host
        self.host_fms_rule = host_fms_rule
        self.cat = cat
        self.req = req
        self._names = BitNames()
        self._guests: dict = {}
        self._hosts: dict = {}
        self._protected: dict = {}

    def _mask(self, names) -> int:
        return self._names.mask(names)

    def guest(self, g) -> GuestBits:
        hit = self._guests.get(g)
        if hit is not None:
            return hit
        if len(self._guests) >= MAX_SEEN:  # a long-lived scheduler sees guests come and go
            self._guests.clear()
        visible = g.visible()
        vendor, fam, mod, step = g.identity()
        mirror = HostFacts(vendor=vendor, family=fam, model=mod, stepping=step, features=visible,
                           silicon=visible)
        static_ok = not check_answer(self.cat, (mirror,), self.req, g)
        out = GuestBits(static_ok, vendor, self._mask(visible), g.fms)
        self._guests[g] = out
        return out

    def host(self, h: HostFacts) -> HostBits:
        hit = self._hosts.get(h)
        if hit is not None:
            return hit
        if len(self._hosts) >= MAX_SEEN:
            self._hosts.clear()
        out = HostBits(h.vendor, self._mask(h.features), h.fms)
        self._hosts[h] = out
        return out

    def protected(self, g, h: HostFacts) -> bool:
        key = (g, h)
        hit = self._protected.get(key)
        if hit is None:
            if len(self._protected) >= MAX_SEEN:
                self._protected.clear()
            req, view = self.req, g.view()
            hit = self._protected[key] = all(
                ob.holds(view) for ob in obligations(g.identity()[0], (h,), req.kernels, req.policy, req.waive))
        return hit

    def check(self, g, h) -> bool:
        """Whether guest ``g`` is safe on host ``h`` (same verdict as ``not check_answer``)."""
        gb = self._guests.get(g) or self.guest(g)
        hb = self._hosts.get(h) or self.host(h)
        return self.check_bits(gb, hb) and self.protected(g, h)

    def check_bits(self, gb: GuestBits, hb: HostBits) -> bool:
        """The per-pair work that needs no protection verdict, on precomputed bitsets."""
        return (gb.static_ok and gb.vendor == hb.vendor
                and not (gb.visible & ~hb.features)
                and (gb.fms is None or gb.fms == hb.fms or not self.host_fms_rule))
