"""Latest message of each input stream, with per-stream age checks and thread-safe snapshots."""
import threading
from dataclasses import dataclass

import numpy as np

INSTRUCTION_STREAM = 'instruction'
JOINT_STATE_STREAM = 'joint_states'
EXTRA_STATE_STREAM = 'extra_state'


def camera_stream(camera: str) -> str:
    """Stream name of a bundle camera (as reported in PolicyStatus.stale_inputs)."""
    return f'camera/{camera}'


@dataclass
class _Latest:
    value: object
    arrival_ns: int  # node clock: ages are measured against it, so use_sim_time holds.
    stamp_ns: int  # header stamp of the message (0 when it had none).


@dataclass(frozen=True)
class ObservationSnapshot:
    """One consistent set of inputs for the engine."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str
    joint_positions: np.ndarray
    newest_stamp_ns: int
    oldest_arrival_ns: int


@dataclass
class StreamLimits:
    """Maximum age (s) per stream kind; the instruction never goes stale once received."""

    image_s: float
    joint_state_s: float
    extra_state_s: float


class ObservationBuffer:
    """Holds the latest accepted value of every stream the bundle needs."""

    def __init__(self, cameras: list[str], num_joints: int, num_extra: int, limits: StreamLimits) -> None:
        """Set up the required streams: one per camera, joint states, instruction, extra state if any."""
        self.cameras = list(cameras)
        self.num_joints = num_joints
        self.num_extra = num_extra
        self._lock = threading.Lock()
        self._latest: dict[str, _Latest] = {}
        self._max_age_ns: dict[str, int] = {camera_stream(c): _ns(limits.image_s) for c in cameras}
        self._max_age_ns[JOINT_STATE_STREAM] = _ns(limits.joint_state_s)
        if num_extra:
            self._max_age_ns[EXTRA_STATE_STREAM] = _ns(limits.extra_state_s)

    @property
    def required_streams(self) -> list[str]:
        """Every stream an observation needs, the instruction included."""
        return [*self._max_age_ns, INSTRUCTION_STREAM]

    def put(self, stream: str, value: object, arrival_ns: int, stamp_ns: int = 0) -> None:
        """Store the newest accepted value of a stream."""
        with self._lock:
            self._latest[stream] = _Latest(value, arrival_ns, stamp_ns)

    def get(self, stream: str) -> object | None:
        """Latest value of a stream, None before the first message."""
        with self._lock:
            latest = self._latest.get(stream)
        return None if latest is None else latest.value

    def clear(self) -> None:
        """Forget every stream (cleanup)."""
        with self._lock:
            self._latest.clear()

    def stale_streams(self, now_ns: int) -> list[str]:
        """Names of required streams that are missing or older than their limit."""
        with self._lock:
            stale = [INSTRUCTION_STREAM] if INSTRUCTION_STREAM not in self._latest else []
            for name, max_age in self._max_age_ns.items():
                latest = self._latest.get(name)
                if latest is None or now_ns - latest.arrival_ns > max_age:
                    stale.append(name)
            return stale

    def snapshot(self) -> ObservationSnapshot:
        """Assemble the latest values into one observation; KeyError names a missing stream."""
        with self._lock:
            latest = dict(self._latest)
        missing = [s for s in self.required_streams if s not in latest]
        if missing:
            raise KeyError(f'no message yet on {missing}')
        images = {c: latest[camera_stream(c)].value for c in self.cameras}
        joints = np.asarray(latest[JOINT_STATE_STREAM].value, dtype=np.float64)
        parts = [joints]
        if self.num_extra:
            parts.append(np.asarray(latest[EXTRA_STATE_STREAM].value, dtype=np.float64))
        timed = [latest[s] for s in self._max_age_ns]
        return ObservationSnapshot(
            images=images,
            state=np.concatenate(parts).astype(np.float32),
            instruction=str(latest[INSTRUCTION_STREAM].value),
            joint_positions=joints,
            newest_stamp_ns=max(t.stamp_ns for t in timed),
            oldest_arrival_ns=min(t.arrival_ns for t in timed),
        )


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))
