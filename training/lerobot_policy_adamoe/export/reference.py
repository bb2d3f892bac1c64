"""PyTorch reference for bundle validation: LeRobot's own pre/post-processors and predict_action_chunk."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from adamoe_contract import bundle_format as fmt
from adamoe_contract.backend import Observation, PolicyBackend
from adamoe_contract.preprocess import unnormalize
from adamoe_ros.engine.flow import euler_integrate
from lerobot_policy_adamoe.export.graphs import DenoiseStepGraph, PrefixGraph
from lerobot_policy_adamoe.export.metadata import IMAGE_PREFIX, camera_names

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


@torch.no_grad()
def torch_graph_action_chunk(policy: nn.Module, engine: Any, observation: Observation, noise: np.ndarray) -> np.ndarray:
    """Run the exported graph modules eagerly in the policy's dtype, inside the engine's own Euler loop.

    The reference for a half-precision bundle: LeRobot's predict_action_chunk feeds float32 inputs, so a
    float16 policy is compared here on the very feeds (`engine.preprocess`), loop and de-normalisation the
    engine uses; only the graph execution differs (PyTorch instead of ONNX Runtime).
    """
    spec = engine.spec
    dtype = policy.model.vlm_with_expert.get_vlm_model().vision_model.embeddings.patch_embedding.weight.dtype
    feeds = {name: torch.from_numpy(value) for name, value in engine.preprocess(observation).items()}
    cameras = camera_names(policy.config)
    images = [feeds[fmt.image_input_name(cam)].to(dtype) for cam in cameras]
    pad_mask, *cache = PrefixGraph(policy.model, len(cameras))(
        *images, feeds[fmt.LANG_TOKENS], feeds[fmt.LANG_MASK], feeds[fmt.STATE].to(dtype)
    )
    denoise = DenoiseStepGraph(policy.model, len(cache) // 2)

    def velocity(x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        x, time = torch.from_numpy(x_t).to(dtype), torch.from_numpy(t).to(dtype)
        return denoise(x, time, pad_mask, *cache)[0].float().numpy()

    x_0 = euler_integrate(velocity, noise, spec.num_flow_steps)
    return unnormalize(x_0[0, :, : spec.action_dim], spec.action_norm).astype(np.float32)
