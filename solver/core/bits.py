"""Names as bits: sets of feature names become ints, so set tests are single operations."""

from __future__ import annotations

from collections.abc import Iterable


class BitNames:
    """Each name gets the next bit the first time it is seen; a set of names is the OR of
    its bits.  One registry serves everything compared with each other."""

    def __init__(self) -> None:
        self.bit: dict[str, int] = {}

    def mask(self, names: Iterable[str]) -> int:
        bit = self.bit
        m = 0
        for n in names:
            b = bit.get(n)
            if b is None:
                b = bit[n] = 1 << len(bit)
            m |= b
        return m
