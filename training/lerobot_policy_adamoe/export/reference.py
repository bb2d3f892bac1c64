"""PyTorch reference for bundle validation: LeRobot's own pre/post-processors and predict_action_chunk."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from adamoe_contract.backend import Observation, PolicyBackend
from lerobot_policy_adamoe.export.metadata import IMAGE_PREFIX

INSTRUCTIONS = (
    'pick up the red cube',
    'push the block to the left and then stop',
    '',
    'stack the red cube on the blue cube, then open the gripper and move the arm to the home position twice',
)


def observation_to_batch(observation: Observation) -> dict[str, Any]:
    """Engine observation -> raw LeRobot batch (images float [0, 1] CHW, like a dataset frame)."""
    batch: dict[str, Any] = {
        IMAGE_PREFIX + cam: torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0
        for cam, img in observation.images.items()
    }
    batch['observation.state'] = torch.from_numpy(np.asarray(observation.state, dtype=np.float32))[None]
    batch['task'] = observation.instruction
    return batch


@torch.no_grad()
def torch_action_chunk(
    policy: nn.Module, preprocessor: Any, postprocessor: Any, observation: Observation, noise: np.ndarray
) -> np.ndarray:
    """Run the PyTorch policy with the given noise; return the (horizon, action_dim) chunk in robot units."""
    policy.eval()
    policy.reset()
    batch = preprocessor(observation_to_batch(observation))
    actions = policy.predict_action_chunk(batch, noise=torch.from_numpy(noise).float())
    return postprocessor(actions)[0].cpu().numpy()


def random_observation(engine: PolicyBackend, rng: np.random.Generator, instruction: str) -> Observation:
    """Draw a random observation matching the bundle's cameras and state size."""
    spec = engine.spec
    images = {cam: rng.integers(0, 256, (*spec.image_size[cam], 3), dtype=np.uint8) for cam in spec.camera_names}
    return Observation(
        images=images, state=rng.normal(0, 0.5, spec.state_dim).astype(np.float32), instruction=instruction
    )


def max_abs_difference(
    policy: nn.Module, preprocessor: Any, postprocessor: Any, engine: PolicyBackend, cases: int = 3, seed: int = 0
) -> float:
    """Largest |engine - PyTorch policy| over random observations, instructions and noise seeds."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for case in range(cases):
        observation = random_observation(engine, rng, INSTRUCTIONS[case % len(INSTRUCTIONS)])
        result = engine.infer(observation, noise_seed=seed + case)
        expected = torch_action_chunk(policy, preprocessor, postprocessor, observation, result.noise)
        worst = max(worst, float(np.abs(result.actions - expected).max()))
    return worst
