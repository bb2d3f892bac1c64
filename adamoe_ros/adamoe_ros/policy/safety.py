"""The safety filter every command passes: finite, inside joint limits, bounded step from the last command."""

import numpy as np


class UnsafeCommandError(ValueError):
    """A command cannot be made safe (non-finite values); the caller must hold instead."""


class SafetyFilter:
    """Clamps targets to position limits and a per-step velocity limit, starting from a known position."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, max_velocity: np.ndarray) -> None:
        """Store limits (per joint; rad, rad, rad/s); raises ValueError on inconsistent limits."""
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.max_velocity = np.broadcast_to(np.asarray(max_velocity, dtype=np.float64), self.lower.shape).copy()
        if self.lower.shape != self.upper.shape or self.lower.ndim != 1:
            raise ValueError(f'limit lengths differ: lower {self.lower.shape}, upper {self.upper.shape}')
        for name, values in (('lower', self.lower), ('upper', self.upper), ('velocity', self.max_velocity)):
            if not np.all(np.isfinite(values)):
                raise ValueError(f'{name} limits must be finite, got {values.tolist()}')
        if np.any(self.lower >= self.upper):
            raise ValueError(f'lower limits {self.lower.tolist()} must be below upper {self.upper.tolist()}')
        if np.any(self.max_velocity <= 0):
            raise ValueError(f'max velocities must be positive, got {self.max_velocity.tolist()}')

    @property
    def dof(self) -> int:
        """Number of joints the filter guards."""
        return int(self.lower.size)

    def clamp_position(self, position: np.ndarray) -> np.ndarray:
        """Return the position clamped into the limits (finite input required)."""
        return np.clip(np.asarray(position, dtype=np.float64), self.lower, self.upper)

    def limit(self, target: np.ndarray, previous: np.ndarray, step_s: float) -> np.ndarray:
        """Return the safe command towards target from previous, at most max_velocity * step_s per joint."""
        target = np.asarray(target, dtype=np.float64)
        previous = np.asarray(previous, dtype=np.float64)
        if target.shape != self.lower.shape or previous.shape != self.lower.shape:
            raise UnsafeCommandError(f'command has shape {target.shape}, expected {self.lower.shape}')
        if not (np.all(np.isfinite(target)) and np.all(np.isfinite(previous))):
            raise UnsafeCommandError('non-finite value in target or reference position')
        # Start from a reference inside the limits, so a robot outside them is pulled back slowly too.
        start = self.clamp_position(previous)
        max_step = self.max_velocity * max(step_s, 0.0)
        stepped = np.clip(self.clamp_position(target), start - max_step, start + max_step)
        return self.clamp_position(stepped)

    def limit_sequence(self, targets: np.ndarray, previous: np.ndarray, step_s: np.ndarray) -> np.ndarray:
        """Filter a trajectory point by point; step_s[i] is the time from point i-1 (or previous) to i."""
        out = np.empty((len(targets), self.dof), dtype=np.float64)
        reference = previous
        for i, target in enumerate(targets):
            reference = self.limit(target, reference, float(step_s[i]))
            out[i] = reference
        return out
