"""Sample several time-stamped streams on a fixed-rate grid (one implementation for the node and the converter).

Each grid time t_k = t0 + k / fps takes, from every stream, the sample whose stamp is nearest to t_k. A grid time
is decided as soon as every stream has a sample stamped at or after it (so the nearest one is known), or once the
clock is `max_latency_ns` past it. It is rejected (and counted) when a stream has no sample within `tolerance_ns`.
No ROS and no LeRobot here, so the same code runs live and offline on rosbag2 files.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Any

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class AlignedFrame:
    """One accepted grid point: the chosen value of every stream and its stamp."""

    index: int
    time_ns: int
    values: dict[str, Any]
    stamps_ns: dict[str, int]


@dataclass(frozen=True)
class DroppedFrame:
    """One rejected grid point and why."""

    index: int
    time_ns: int
    reason: str


@dataclass
class _Stream:
    samples: deque = field(default_factory=deque)  # (stamp_ns, value), non-decreasing stamps
    out_of_order: int = 0


class FrameAligner:
    """Nearest-stamp sampler of named streams on an fps grid, with a tolerance."""

    def __init__(
        self, streams: list[str], fps: float, tolerance_s: float, max_latency_s: float, history_s: float = 2.0
    ) -> None:
        if not streams or len(set(streams)) != len(streams):
            raise ValueError(f'streams must be unique and non-empty, got {streams}')
        if fps <= 0:
            raise ValueError(f'fps must be > 0, got {fps}')
        if tolerance_s <= 0 or max_latency_s < 0:
            raise ValueError(f'tolerance_s must be > 0 and max_latency_s >= 0 (got {tolerance_s}, {max_latency_s})')
        self.stream_names = list(streams)
        self.period_ns = round(NS_PER_S / fps)
        self.tolerance_ns = round(tolerance_s * NS_PER_S)
        self.max_latency_ns = round(max_latency_s * NS_PER_S)
        self._history_ns = round(history_s * NS_PER_S)
        self._streams = {name: _Stream() for name in streams}
        self._t0_ns: int | None = None
        self._next_index = 0

    @property
    def started(self) -> bool:
        """True between start() and stop()."""
        return self._t0_ns is not None

    @property
    def next_time_ns(self) -> int | None:
        """Time of the next undecided grid point, None when stopped."""
        return None if self._t0_ns is None else self._t0_ns + self._next_index * self.period_ns

    def start(self, t0_ns: int) -> None:
        """Begin a new grid at t0 (an episode start); buffered samples are kept for the first points."""
        self._t0_ns = t0_ns
        self._next_index = 0

    def stop(self) -> None:
        """End the grid; samples stay buffered so a following start() can use them."""
        self._t0_ns = None
        self._next_index = 0

    def push(self, stream: str, stamp_ns: int, value: Any) -> None:
        """Buffer one sample; a stamp older than the stream's newest is ignored (and counted)."""
        buf = self._streams[stream]
        if buf.samples and stamp_ns < buf.samples[-1][0]:
            buf.out_of_order += 1
            return
        buf.samples.append((stamp_ns, value))
        # Keep a bounded history so a long pause (no episode) does not grow memory.
        while len(buf.samples) > 2 and buf.samples[1][0] < stamp_ns - self._history_ns:
            buf.samples.popleft()

    def out_of_order_count(self) -> int:
        """Return how many samples were ignored because their stamp went backwards."""
        return sum(s.out_of_order for s in self._streams.values())

    def poll(self, now_ns: int, flush: bool = False) -> list[AlignedFrame | DroppedFrame]:
        """Decide every grid point that can be decided at `now_ns` (all points <= now when flush=True)."""
        results: list[AlignedFrame | DroppedFrame] = []
        while self._t0_ns is not None:
            t_ns = self._t0_ns + self._next_index * self.period_ns
            if t_ns > now_ns:
                break
            late = now_ns - t_ns >= self.max_latency_ns
            if not (flush or late or self._all_streams_past(t_ns)):
                break
            results.append(self._decide(self._next_index, t_ns))
            self._next_index += 1
            self._prune(t_ns)
        return results

    def _all_streams_past(self, t_ns: int) -> bool:
        return all(s.samples and s.samples[-1][0] >= t_ns for s in self._streams.values())

    def _decide(self, index: int, t_ns: int) -> AlignedFrame | DroppedFrame:
        values: dict[str, Any] = {}
        stamps: dict[str, int] = {}
        for name, buf in self._streams.items():
            if not buf.samples:
                return DroppedFrame(index, t_ns, f'no {name} received')
            stamp, value = min(buf.samples, key=lambda sample: abs(sample[0] - t_ns))
            if abs(stamp - t_ns) > self.tolerance_ns:
                return DroppedFrame(
                    index,
                    t_ns,
                    f'{name} is {(stamp - t_ns) / 1e6:+.1f} ms from the frame time '
                    f'(tolerance {self.tolerance_ns / 1e6:.1f} ms)',
                )
            values[name] = value
            stamps[name] = stamp
        return AlignedFrame(index, t_ns, values, stamps)

    def _prune(self, decided_ns: int) -> None:
        # Samples before the last one at or before the decided time can never be nearest to a later grid point.
        for buf in self._streams.values():
            while len(buf.samples) > 1 and buf.samples[1][0] <= decided_ns:
                buf.samples.popleft()
