"""The newest valid value of each input stream, the stamp rules that admit a value, and freshness.

Every time is on the node clock (ROS time, so /clock under use_sim_time). A camera frame or a joint state is a
measurement stamped in its header; it is admitted only when its stamp is
  - set: the age of an unstamped measurement is unknown;
  - at most max_future_stamp ahead of the node clock (clock offset between machines, a sim's /clock arriving
    just after the message it stamped);
  - no older than the newest stamp admitted on its stream: only the newest value is kept, nothing is taken out
    of order;
  - no older than the stream's maximum age: it would be stale on arrival.
Anything else is rejected and changes nothing, so a bad stamp can neither block the stream nor keep it fresh.
The instruction and the extra state carry no stamp: they count from their arrival.

A value is measured at its stamp, or at its arrival if that came first (a stamp ahead does not buy freshness).
A stream is fresh while its newest value was measured no longer than its maximum age ago; the instruction never
goes stale once received.
"""

import threading
from dataclasses import dataclass

import numpy as np

from adamoe_ros.policy.validation import CameraFrame, InputRejectedError

INSTRUCTION_STREAM = 'instruction'
JOINT_STATE_STREAM = 'joint_states'
EXTRA_STATE_STREAM = 'extra_state'


def camera_stream(camera: str) -> str:
    """Stream name of a bundle camera (as reported in PolicyStatus.stale_inputs)."""
    return f'camera/{camera}'


@dataclass(frozen=True)
class _Value:
    value: object
    measured_ns: int  # the stamp, or the arrival if that came first
    stamp_ns: int  # header stamp; 0 for streams without one


@dataclass(frozen=True)
class ObservationSnapshot:
    """One consistent set of inputs for the engine."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str


@dataclass(frozen=True)
class StreamLimits:
    """Maximum age (s) per stream kind, and how far a stamp may lead the node clock (s)."""

    image_s: float
    joint_state_s: float
    extra_state_s: float
    future_stamp_s: float


class ObservationBuffer:
    """Holds the newest admitted value of every stream the bundle needs."""

    def __init__(self, cameras: list[str], num_extra: int, limits: StreamLimits) -> None:
        """Set up the required streams: one per camera, joint states, instruction, extra state if any."""
        self.cameras = list(cameras)
        self.num_extra = num_extra
        self._lock = threading.Lock()
        self._latest: dict[str, _Value] = {}
        self._max_age_ns: dict[str, int] = {camera_stream(c): _ns(limits.image_s) for c in cameras}
        self._max_age_ns[JOINT_STATE_STREAM] = _ns(limits.joint_state_s)
        if num_extra:
            self._max_age_ns[EXTRA_STATE_STREAM] = _ns(limits.extra_state_s)
        self._max_future_ns = _ns(limits.future_stamp_s)

    def check_stamp(self, stream: str, stamp_ns: int, now_ns: int) -> None:
        """Raise InputRejectedError when the stamp rules refuse a value of `stream` stamped stamp_ns.

        Cheap, so a camera frame that will be refused is refused before anything converts it.
        """
        if stamp_ns == 0:
            raise InputRejectedError('no header stamp: the age of the measurement is unknown', 'no_stamp')
        lead_ns = stamp_ns - now_ns
        if lead_ns > self._max_future_ns:
            raise InputRejectedError(
                f'stamp {_s(stamp_ns)} s is {_s(lead_ns)} s ahead of the node clock '
                f'(max_future_stamp {_s(self._max_future_ns)} s)',
                'future_stamp',
            )
        if -lead_ns > self._max_age_ns[stream]:
            raise InputRejectedError(
                f'stamp {_s(stamp_ns)} s is {_s(-lead_ns)} s old, beyond the maximum age '
                f'{_s(self._max_age_ns[stream])} s',
                'too_old',
            )
        with self._lock:
            newest = self._latest.get(stream)
        if newest is not None and stamp_ns < newest.stamp_ns:
            raise _older_than(stamp_ns, newest)

    def put_measurement(self, stream: str, value: object, stamp_ns: int, now_ns: int) -> object | None:
        """Store a stamped value the stamp rules admit and return the one it replaces (None if none).

        InputRejectedError says which rule it breaks.
        """
        self.check_stamp(stream, stamp_ns, now_ns)
        with self._lock:
            newest = self._latest.get(stream)
            if newest is not None and stamp_ns < newest.stamp_ns:  # a newer one came in since check_stamp
                raise _older_than(stamp_ns, newest)
            self._latest[stream] = _Value(value, min(stamp_ns, now_ns), stamp_ns)
        return None if newest is None else newest.value

    def put(self, stream: str, value: object, now_ns: int) -> None:
        """Store a value of a stream without stamps (instruction, extra state), measured on arrival."""
        with self._lock:
            self._latest[stream] = _Value(value, now_ns, 0)

    def get(self, stream: str) -> object | None:
        """Newest value of a stream, fresh or not; None before the first one."""
        with self._lock:
            newest = self._latest.get(stream)
        return None if newest is None else newest.value

    def fresh(self, stream: str, now_ns: int, measured_since_ns: int | None = None) -> object | None:
        """Newest value of a timed stream if fresh at now_ns and measured at or after measured_since_ns."""
        with self._lock:
            newest = self._latest.get(stream)
        if newest is None or not self._is_fresh(stream, newest, now_ns):
            return None
        if measured_since_ns is not None and newest.measured_ns < measured_since_ns:
            return None
        return newest.value

    def stale_streams(self, now_ns: int) -> list[str]:
        """Names of required streams that are missing or not fresh."""
        with self._lock:
            latest = dict(self._latest)
        return self._stale(latest, now_ns)

    def forget_measurements(self) -> None:
        """Forget every timed stream, stamps included (the clock jumped back); the instruction stays."""
        with self._lock:
            self._latest = {k: v for k, v in self._latest.items() if k not in self._max_age_ns}

    def snapshot(self, now_ns: int) -> ObservationSnapshot | None:
        """Assemble the newest values into one observation, or None while any required stream is stale.

        Camera frames are marked taken, then converted to RGB (outside the lock: the callbacks keep going).
        """
        with self._lock:
            latest = dict(self._latest)
            if self._stale(latest, now_ns):
                return None
            frames = {c: latest[camera_stream(c)].value for c in self.cameras}
            for frame in frames.values():
                if isinstance(frame, CameraFrame):
                    frame.taken = True
        parts = [np.asarray(latest[JOINT_STATE_STREAM].value, dtype=np.float64)]
        if self.num_extra:
            parts.append(np.asarray(latest[EXTRA_STATE_STREAM].value, dtype=np.float64))
        return ObservationSnapshot(
            images={c: f.rgb() if isinstance(f, CameraFrame) else f for c, f in frames.items()},
            state=np.concatenate(parts).astype(np.float32),
            instruction=str(latest[INSTRUCTION_STREAM].value),
        )

    def _stale(self, latest: dict[str, _Value], now_ns: int) -> list[str]:
        stale = [INSTRUCTION_STREAM] if INSTRUCTION_STREAM not in latest else []
        return stale + [
            name for name in self._max_age_ns if name not in latest or not self._is_fresh(name, latest[name], now_ns)
        ]

    def _is_fresh(self, stream: str, value: _Value, now_ns: int) -> bool:
        # A value measured after now dates from before a backward clock jump: not fresh either.
        return 0 <= now_ns - value.measured_ns <= self._max_age_ns[stream]


def _older_than(stamp_ns: int, newest: _Value) -> InputRejectedError:
    return InputRejectedError(
        f'stamp {_s(stamp_ns)} s is older than the newest accepted {_s(newest.stamp_ns)} s', 'out_of_order'
    )


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _s(ns: int) -> str:
    return f'{ns * 1e-9:.3f}'
