"""Sim-time stamps for messages without a header stamp, from the DDS source timestamps of /clock.

Under use_sim_time a headerless message (Float64MultiArray) was published at the sim time current at its publisher:
the value of the last /clock published before it. DDS gives every message its publication time on the publisher's
system clock (the source timestamp), so each /clock pairs a system time with a sim time, and a message published at
system time s is stamped with the sim time of the last /clock published at or before s. Neither its queueing delay
nor the speed of sim time (real_time_factor, a sim or source that falls behind) changes that stamp. That /clock may
still be queued behind the message, so a message waits until a /clock published after it has arrived (one
subscription delivers /clock in publication order). Publishers on other hosts need synchronised system clocks.
"""

from bisect import bisect_right
from collections import deque
from typing import Any


class SimPublicationStamps:
    """Pairs of (system, sim) time from /clock, and the samples waiting for the /clock that decides their stamp."""

    def __init__(self, history_ns: int) -> None:
        self._history_ns = history_ns  # how old (system time) a sample may be and still get its sim time
        self._clocks: deque[tuple[int, int]] = deque()  # (source timestamp, sim time) of each /clock, in order
        self._waiting: list[tuple[int, Any]] = []  # (source timestamp, sample), in arrival order

    def add_clock(self, source_ns: int, sim_ns: int) -> list[tuple[int, Any]]:
        """Record a /clock; return the waiting samples it decides, as (sim stamp, sample) in arrival order."""
        self._clocks.append((source_ns, sim_ns))
        while len(self._clocks) > 1 and self._clocks[1][0] <= source_ns - self._history_ns:
            self._clocks.popleft()  # the first clock kept is still the last one at or before the history's start
        decided = [(self._sim_ns_at(s), sample) for s, sample in self._waiting if s < source_ns]
        self._waiting = [(s, sample) for s, sample in self._waiting if s >= source_ns]
        return decided

    def add_sample(self, source_ns: int, sample: Any) -> list[tuple[int, Any]]:
        """Stamp a sample published at system time `source_ns`: [(sim stamp, sample)], or [] while it waits."""
        if self._clocks and source_ns < self._clocks[-1][0]:
            return [(self._sim_ns_at(source_ns), sample)]
        # A stopped /clock (sim paused or gone) must not grow memory: only the newest history_ns of samples wait.
        self._waiting = [(s, kept) for s, kept in self._waiting if s > source_ns - self._history_ns]
        self._waiting.append((source_ns, sample))
        return []

    def _sim_ns_at(self, source_ns: int) -> int:
        """Sim time of the last /clock published at or before `source_ns`; 0 (no sim time yet) when none is known."""
        i = bisect_right(self._clocks, source_ns, key=lambda clock: clock[0])
        return self._clocks[i - 1][1] if i else 0
