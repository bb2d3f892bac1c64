"""Flow-matching Euler integration with optional real-time-chunking (RTC) guidance.

SmolVLA's convention (openpi): t runs from 1 (noise) to 0 (actions), dt = -1/N, x <- x + dt * v.

RTC (Black et al. 2025, LeRobot `RTCProcessor`): the first `inference_delay` actions of the new chunk are
pulled toward the previous chunk's leftover actions with a soft mask W, guidance weight
min(max_guidance, (1-tau)/tau * ((1-tau)^2 + tau^2) / (1-tau)^2) with tau = 1 - t. The exact method needs a
vector-Jacobian product through the network; ONNX graphs give none, so, like LeRobot's implementation, we
use the identity-Jacobian approximation: correction = W * (Y - x1_hat), x1_hat = x_t - t * v.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def rtc_prefix_weights(inference_delay: int, execution_horizon: int, horizon: int, schedule: str) -> np.ndarray:
    """Soft mask W (horizon,): 1 for frozen steps, decaying to 0 at the execution horizon (LeRobot schedules)."""
    start = min(inference_delay, execution_horizon)
    end = execution_horizon
    weights = np.zeros(horizon, dtype=np.float32)
    if schedule == 'ZEROS':
        weights[:start] = 1.0
        return weights
    if schedule == 'ONES':
        weights[:end] = 1.0
        return weights
    span = min(end, horizon) - start
    if span > 0 and end > start:
        ramp = np.linspace(1.0, 0.0, span + 2, dtype=np.float32)[1:-1]
        if schedule == 'EXP':
            ramp = ramp * np.expm1(ramp) / (math.e - 1)
        weights[start : start + span] = ramp
    weights[: min(start, horizon)] = 1.0
    return weights


def rtc_guidance_weight(time: float, max_guidance_weight: float) -> float:
    """Guidance strength at flow time t (tau = 1 - t), capped at max_guidance_weight."""
    tau = 1.0 - time
    if tau <= 0.0 or tau >= 1.0:
        return max_guidance_weight
    inv_r2 = ((1.0 - tau) ** 2 + tau**2) / (1.0 - tau) ** 2
    return min((1.0 - tau) / tau * inv_r2, max_guidance_weight)


def euler_integrate(
    velocity_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    noise: np.ndarray,
    num_steps: int,
    guidance_target: np.ndarray | None = None,
    guidance_mask: np.ndarray | None = None,
    max_guidance_weight: float = 10.0,
) -> np.ndarray:
    """Integrate dx/dt = v from t=1 to t=0; with a target, apply RTC guidance to every step."""
    dt = -1.0 / num_steps
    x_t = noise.astype(np.float32)
    for step in range(num_steps):
        time = 1.0 + step * dt
        v_t = velocity_fn(x_t, np.array([time], dtype=np.float32))
        if guidance_target is not None:
            x1_hat = x_t - np.float32(time) * v_t
            correction = (guidance_target - x1_hat) * guidance_mask[None, :, None]
            v_t = v_t - np.float32(rtc_guidance_weight(time, max_guidance_weight)) * correction
        x_t = (x_t + np.float32(dt) * v_t).astype(np.float32)
    return x_t
