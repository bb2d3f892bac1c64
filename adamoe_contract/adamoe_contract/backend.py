"""What an inference backend takes and returns, and the Protocol every backend implements.

The runtime's ONNX Runtime engine (adamoe_ros.engine.PolicyEngine) and training's PyTorch development backend
(lerobot_policy_adamoe.export.torch_backend.TorchPolicyEngine) both implement `PolicyBackend`, so code written
against it (evaluation, parity checks) runs either one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from adamoe_contract.preprocess import normalize
from adamoe_contract.routing import RoutingStats
from adamoe_contract.spec import BundleSpec

# Soft-mask schedules of real-time chunking over the frozen prefix (LeRobot's RTCAttentionSchedule names).
RTC_SCHEDULES = ('LINEAR', 'EXP', 'ONES', 'ZEROS')


@dataclass
class Observation:
    """One synchronised observation: uint8 HxWx3 RGB per camera, float32 state in state_names order."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str


@dataclass
class InferenceResult:
    """An action chunk in robot units plus stage timings (seconds) and expert usage."""

    actions: np.ndarray
    timings: dict[str, float]
    routing: RoutingStats
    noise: np.ndarray = field(repr=False, default=None)


@dataclass(frozen=True)
class RtcOptions:
    """Real-time-chunking guidance settings (LeRobot defaults)."""

    execution_horizon: int = 10
    max_guidance_weight: float = 10.0
    schedule: str = 'LINEAR'

    def __post_init__(self) -> None:
        """Reject an unknown schedule when the options are made, not at the first guided chunk."""
        if self.schedule not in RTC_SCHEDULES:
            raise ValueError(f'rtc schedule must be one of {RTC_SCHEDULES}, got {self.schedule!r}')


@runtime_checkable
class PolicyBackend(Protocol):
    """Runs one bundle-shaped policy: an observation in, one action chunk in robot units out."""

    spec: BundleSpec
    rtc: RtcOptions

    def infer(
        self,
        observation: Observation,
        prefix_actions: np.ndarray | None = None,
        inference_delay: int = 0,
        noise_seed: int | None = None,
        noise: np.ndarray | None = None,
    ) -> InferenceResult:
        """Predict one action chunk (horizon, action_dim) in robot units; RTC-guided if prefix_actions given.

        prefix_actions (n, action_dim), robot units: the previous chunk's actions still to execute, of which
        the first `inference_delay` are frozen. noise (1, horizon, max_action_dim) or noise_seed fixes the
        flow's starting noise, so two backends given the same noise return the same chunk.
        """
        ...


def check_observation(observation: Observation, spec: BundleSpec) -> np.ndarray:
    """Validate an observation against the bundle; return the float32 state (ValueError names the bad field)."""
    missing = [cam for cam in spec.camera_names if cam not in observation.images]
    if missing:
        raise ValueError(f'observation lacks camera images {missing} (bundle cameras: {list(spec.camera_names)})')
    for cam in spec.camera_names:
        image = np.asarray(observation.images[cam])
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
            raise ValueError(f"camera '{cam}': expected uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
    state = np.asarray(observation.state, dtype=np.float32).reshape(-1)
    if state.shape != (spec.state_dim,):
        raise ValueError(f'state: expected {spec.state_dim} values {list(spec.state_names)}, got {state.shape}')
    if not np.all(np.isfinite(state)):
        raise ValueError('state contains NaN or inf')
    if not isinstance(observation.instruction, str):
        raise ValueError(f'instruction must be str, got {type(observation.instruction).__name__}')
    return state


def normalized_prefix(prefix_actions: np.ndarray, inference_delay: int, spec: BundleSpec) -> np.ndarray:
    """Validate RTC's leftover actions (robot units) and return them normalised, cut to the horizon."""
    prefix = np.asarray(prefix_actions, dtype=np.float32)
    if prefix.ndim != 2 or prefix.shape[1] != spec.action_dim or prefix.shape[0] == 0:
        raise ValueError(f'prefix_actions: expected (n, {spec.action_dim}), got {prefix.shape}')
    if not np.all(np.isfinite(prefix)):
        raise ValueError('prefix_actions contain NaN or inf')
    if not 0 <= inference_delay <= spec.horizon:
        raise ValueError(f'inference_delay must be in 0..{spec.horizon}, got {inference_delay}')
    return normalize(prefix[: spec.horizon], spec.action_norm).astype(np.float32)


def initial_noise(spec: BundleSpec, seed: int | None, noise: np.ndarray | None) -> np.ndarray:
    """Return the flow's starting noise (1, horizon, max_action_dim): `noise` as given, or normal from `seed`."""
    shape = (1, spec.horizon, spec.max_action_dim)
    if noise is not None:
        return np.asarray(noise, dtype=np.float32).reshape(shape)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
