"""Time-stamped queue of future joint targets, merged chunk by chunk in rtc, blend or latest mode."""

import threading
from dataclasses import dataclass

import numpy as np

EXECUTION_MODES = ('rtc', 'blend', 'latest')
# A new chunk is asked for once fewer than this fraction of the horizon is queued (measured best for the demo
# bundle: results/ablation_minilm/refill_sweep/).
DEFAULT_REFILL_THRESHOLD = 0.5


@dataclass(frozen=True)
class RtcPrefix:
    """Actions still to execute on the new chunk's time grid, and how many of them are frozen."""

    actions: np.ndarray
    inference_delay: int


class ActionQueue:
    """Future targets (t_i, a_i) on the node clock; samples are interpolated, past entries dropped."""

    def __init__(self, action_dim: int, mode: str, blend_new_weight: float = 0.7) -> None:
        """Create an empty queue; mode is one of EXECUTION_MODES."""
        if mode not in EXECUTION_MODES:
            raise ValueError(f'execution_mode must be one of {EXECUTION_MODES}, got {mode!r}')
        if not 0.0 <= blend_new_weight <= 1.0:
            raise ValueError(f'blend_new_weight must be in [0, 1], got {blend_new_weight}')
        self.action_dim = action_dim
        self.mode = mode
        self.blend_new_weight = blend_new_weight
        self._lock = threading.Lock()
        self._times = np.empty(0, dtype=np.int64)
        self._actions = np.empty((0, action_dim), dtype=np.float64)
        # Last sampled point: the left end of the interpolation towards the first queued entry.
        self._anchor: tuple[int, np.ndarray] | None = None
        # Counts clears: a chunk planned before one (from inputs since found stale, say) is not merged.
        self.generation = 0

    @staticmethod
    def chunk_times(start_ns: int, dt_ns: int, horizon: int) -> np.ndarray:
        """Return the times of a chunk's actions: action i is meant for start + i * dt.

        As recorded: a dataset frame's action is the command sent at that frame's time, so a chunk's action 0 is
        the one of its observation's frame (queued a period later, the arm ran a period behind the demonstrations).
        """
        return start_ns + dt_ns * np.arange(horizon, dtype=np.int64)

    def clear(self) -> None:
        """Drop every queued action and the interpolation anchor, and void chunks planned until now."""
        with self._lock:
            self._times = self._times[:0]
            self._actions = self._actions[:0]
            self._anchor = None
            self.generation += 1

    def remaining(self, now_ns: int) -> int:
        """Return how many queued actions are still in the future."""
        with self._lock:
            return int(np.count_nonzero(self._times > now_ns))

    def future(self, now_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of the (times, actions) still in the future."""
        with self._lock:
            keep = self._times > now_ns
            return self._times[keep].copy(), self._actions[keep].copy()

    def rtc_prefix(self, start_ns: int, dt_ns: int, horizon: int, delay_steps: int) -> RtcPrefix | None:
        """Queued actions resampled on a new chunk's grid (for RTC guidance); None when nothing overlaps."""
        grid = self.chunk_times(start_ns, dt_ns, horizon)
        with self._lock:
            times, actions = self._times.copy(), self._actions.copy()
        if times.size == 0:
            return None
        # The prefix must start at the grid's first step: the engine aligns it with action 0.
        n = int(np.count_nonzero(grid <= times[-1]))
        if n == 0 or grid[0] < times[0]:
            return None
        prefix = _interp_rows(grid[:n], times, actions)
        return RtcPrefix(actions=prefix.astype(np.float32), inference_delay=min(max(delay_steps, 0), n))

    def merge(self, chunk: np.ndarray, start_ns: int, dt_ns: int, generation: int | None = None) -> bool:
        """Insert a chunk computed at start_ns according to the execution mode; True when merged.

        A chunk planned before a clear (its `generation`, read when planning began, is past) is not merged.
        """
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[1] != self.action_dim:
            raise ValueError(f'chunk has shape {chunk.shape}, expected (horizon, {self.action_dim})')
        times = self.chunk_times(start_ns, dt_ns, chunk.shape[0])
        with self._lock:
            if generation is not None and generation != self.generation:
                return False
            if self.mode == 'blend' and self._times.size:
                overlap = (times >= self._times[0]) & (times <= self._times[-1])
                if np.any(overlap):
                    old = _interp_rows(times[overlap], self._times, self._actions)
                    w = self.blend_new_weight
                    chunk = chunk.copy()
                    chunk[overlap] = (1.0 - w) * old + w * chunk[overlap]
            # rtc chunks already agree with the old queue on the frozen prefix (the engine's guidance),
            # and latest replaces: both keep only the new chunk.
            self._times = times
            self._actions = chunk
        return True

    def sample(self, now_ns: int) -> np.ndarray | None:
        """Target for now (linear interpolation), dropping past actions; None once the queue ran out."""
        with self._lock:
            times, actions = self._times, self._actions
            if times.size == 0 or now_ns > times[-1]:
                self._times, self._actions = times[:0], actions[:0]
                return None
            after = int(np.searchsorted(times, now_ns, side='left'))
            if after == 0:
                target = actions[0].copy()
                if self._anchor is not None and self._anchor[0] < now_ns:
                    t0, a0 = self._anchor
                    frac = (now_ns - t0) / (times[0] - t0)
                    target = a0 + frac * (actions[0] - a0)
            else:
                t0, t1 = times[after - 1], times[after]
                frac = (now_ns - t0) / (t1 - t0) if t1 > t0 else 1.0
                target = actions[after - 1] + frac * (actions[after] - actions[after - 1])
                # Keep the entry before now: it is the left end of the next interpolation.
                self._times, self._actions = times[after - 1 :], actions[after - 1 :]
            self._anchor = (now_ns, target.copy())
            return target


def _interp_rows(query: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-column linear interpolation of values(times) at query times (clamped at the ends)."""
    q = query.astype(np.float64)
    t = times.astype(np.float64)
    return np.stack([np.interp(q, t, values[:, j]) for j in range(values.shape[1])], axis=1)
