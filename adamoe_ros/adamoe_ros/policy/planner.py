"""One action chunk planned from the newest inputs: observation snapshot, RTC prefix, engine call.

No ROS here: the node's inference thread calls it, then merges and publishes what it returns.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from adamoe_contract.backend import InferenceResult, Observation, PolicyBackend
from adamoe_ros.policy.chunk_queue import ActionQueue
from adamoe_ros.policy.inputs import ObservationBuffer
from adamoe_ros.ros_env import NS_PER_S


@dataclass(frozen=True)
class PlannedChunk:
    """An engine result and what merging it needs."""

    result: InferenceResult
    start_ns: int  # node clock when its observation was taken: the time of its first action
    generation: int  # the queue's generation when planning began; a clear since then voids the chunk
    engine_s: float  # the engine call, measured around it
    prefix_steps: int  # leading actions guided to continue the queued ones (rtc); 0 when unguided


class ChunkPlanner:
    """Plans chunks with one backend from one observation buffer, continuing one action queue."""

    def __init__(
        self,
        engine: PolicyBackend,
        queue: ActionQueue,
        buffer: ObservationBuffer,
        clock_ns: Callable[[], int],
        execution_mode: str,
        noise_seed: int,
    ) -> None:
        """Plan with `engine`; `clock_ns` is the node clock; noise_seed < 0 draws fresh noise per chunk."""
        self._engine = engine
        self._queue = queue
        self._buffer = buffer
        self._clock_ns = clock_ns
        self._rtc = execution_mode == 'rtc'
        self._noise_seed = noise_seed
        self._dt_ns = int(round(engine.spec.dt * NS_PER_S))
        self._horizon = int(engine.spec.horizon)

    def plan(self, index: int, expected_engine_s: float) -> PlannedChunk | None:
        """Plan chunk number `index`; None when an input is missing or stale.

        `expected_engine_s` sets the RTC inference delay: the queued actions that will run before the chunk lands.
        The engine refuses a bad observation and never returns a non-finite chunk (it raises).
        """
        generation = self._queue.generation  # a stop from here on voids this chunk
        start_ns = self._clock_ns()
        snapshot = self._buffer.snapshot(start_ns)
        if snapshot is None:
            return None
        prefix = None
        if self._rtc:
            delay_steps = math.ceil(expected_engine_s * NS_PER_S / self._dt_ns)
            prefix = self._queue.rtc_prefix(start_ns, self._dt_ns, self._horizon, delay_steps)
        engine_start = time.perf_counter_ns()
        result = self._engine.infer(
            Observation(images=snapshot.images, state=snapshot.state, instruction=snapshot.instruction),
            prefix_actions=None if prefix is None else prefix.actions,
            inference_delay=0 if prefix is None else prefix.inference_delay,
            noise_seed=None if self._noise_seed < 0 else self._noise_seed + index,
        )
        engine_s = (time.perf_counter_ns() - engine_start) * 1e-9
        return PlannedChunk(result, start_ns, generation, engine_s, 0 if prefix is None else len(prefix.actions))
