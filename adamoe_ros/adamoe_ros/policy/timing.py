"""The policy node's timings in one object: engine time per chunk, chunk latency, command times, frame counts."""

import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from adamoe_ros.policy.validation import CameraFrame

ENGINE_WINDOW = 50  # chunks kept for the p95 engine time (the RTC delay estimate and the status)


@dataclass(frozen=True)
class ChunkTiming:
    """Latencies of one chunk (s), read by benchmarks/bench_policy_node.py."""

    arrival_to_publish_s: float  # from the frame that triggered it (or the request) to the chunk published
    engine_s: float  # the engine call, measured around it
    engine_total_s: float  # the engine's own total


class NodeTimings:
    """Recent engine times, per-chunk latencies, command publish times (perf_counter ns) and camera frame counts."""

    def __init__(self) -> None:
        """Start empty."""
        self.engine_s: deque[float] = deque(maxlen=ENGINE_WINDOW)
        self.chunks: deque[ChunkTiming] = deque(maxlen=1000)
        self.command_perf_ns: deque[int] = deque(maxlen=10000)
        self.frames_received: Counter[str] = Counter()  # per camera: frames that passed their checks
        self.frames_unused: Counter[str] = Counter()  # per camera: of those, replaced before any inference took them

    def chunk_published(self, trigger_perf_ns: int, engine_s: float, engine_total_s: float) -> None:
        """Record a chunk just published, triggered at trigger_perf_ns."""
        self.engine_s.append(engine_total_s)
        self.chunks.append(ChunkTiming((time.perf_counter_ns() - trigger_perf_ns) * 1e-9, engine_s, engine_total_s))

    def command_sent(self) -> None:
        """Record that a command is being published now."""
        self.command_perf_ns.append(time.perf_counter_ns())

    def frame_received(self, camera: str, replaced: object) -> None:
        """Count a frame of `camera` stored in place of `replaced` (a CameraFrame, unused unless taken)."""
        self.frames_received[camera] += 1
        if isinstance(replaced, CameraFrame) and not replaced.taken:
            self.frames_unused[camera] += 1

    @property
    def last_engine_s(self) -> float:
        """Engine time of the newest chunk (0 before the first)."""
        return self.engine_s[-1] if self.engine_s else 0.0

    @property
    def p95_engine_s(self) -> float:
        """95th percentile of the recent engine times (0 before the first chunk)."""
        return float(np.percentile(self.engine_s, 95)) if self.engine_s else 0.0
