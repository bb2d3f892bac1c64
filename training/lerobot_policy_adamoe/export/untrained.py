"""Tiny untrained AdaMoE bundles (placeholders for tests and for the committed demo bundle)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adamoe_contract.robots import load_robot_profile
from lerobot_policy_adamoe.export.bundle_writer import Progress, write_bundle
from lerobot_policy_adamoe.export.metadata import DatasetNames

SO101 = load_robot_profile('so101')


@dataclass(frozen=True)
class UntrainedSpec:
    """Interface of a placeholder bundle (defaults: the SO-101 pick-and-place demo)."""

    cameras: Sequence[str] = SO101.camera_names
    image_hw: tuple[int, int] = (128, 128)
    joint_names: Sequence[str] = SO101.joint_names
    extra_state_names: Sequence[str] = SO101.extra_state_names
    fps: float = 10.0
    horizon: int = 16
    num_flow_steps: int = 10
    routing_mode: str = 'adamoe'
    num_experts: int = 4
    top_k: int = 1
    seed: int = 0
    # Plausible stats (radians for joints, metres for the cube) so outputs stay in a sane range.
    joint_mean: float = 0.0
    joint_std: float = 0.3
    extra_mean: Sequence[float] = (0.25, 0.0, 0.02)
    extra_std: Sequence[float] = (0.05, 0.05, 0.02)
    config_overrides: dict[str, Any] = field(default_factory=dict)
    backbone: dict[str, Any] = field(default_factory=dict)  # make_tiny_backbone size overrides


def make_tiny_adamoe_policy(spec: UntrainedSpec, backbone_dir: Path) -> torch.nn.Module:
    """Random-init tiny AdaMoE policy with the spec's cameras, state and action sizes."""
    from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig
    from lerobot_policy_adamoe.modeling_adamoe import AdaMoEPolicy
    from lerobot_policy_adamoe.tiny_base import make_tiny_backbone

    make_tiny_backbone(backbone_dir, **spec.backbone)
    h, w = spec.image_hw
    kwargs: dict[str, Any] = {
        'vlm_model_name': str(backbone_dir),
        'load_vlm_weights': False,
        'device': 'cpu',
        'resize_imgs_with_padding': (w, h),
        'chunk_size': spec.horizon,
        'n_action_steps': spec.horizon,
        'num_steps': spec.num_flow_steps,
        'num_vlm_layers': 2,
        'tokenizer_max_length': 24,
        'push_to_hub': False,
        'routing_mode': spec.routing_mode,
        'num_experts': spec.num_experts,
        'top_k': spec.top_k,
    }
    kwargs.update(spec.config_overrides)
    config = AdaMoEConfig(**kwargs)
    config.input_features, config.output_features = interface_features(spec)
    torch.manual_seed(spec.seed)
    return AdaMoEPolicy(config).eval()


def interface_features(spec: UntrainedSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """LeRobot (input_features, output_features) of the spec's cameras at image_hw, its state and its action."""
    from lerobot.configs import FeatureType, PolicyFeature

    h, w = spec.image_hw
    state_dim = len(spec.joint_names) + len(spec.extra_state_names)
    inputs = {
        **{f'observation.images.{cam}': PolicyFeature(FeatureType.VISUAL, (3, h, w)) for cam in spec.cameras},
        'observation.state': PolicyFeature(FeatureType.STATE, (state_dim,)),
    }
    return inputs, {'action': PolicyFeature(FeatureType.ACTION, (len(spec.joint_names),))}


def untrained_stats(spec: UntrainedSpec) -> dict[str, dict[str, torch.Tensor]]:
    """Synthetic dataset stats in LeRobot's layout."""
    joints = len(spec.joint_names)
    state_mean = torch.tensor([spec.joint_mean] * joints + list(spec.extra_mean), dtype=torch.float32)
    state_std = torch.tensor([spec.joint_std] * joints + list(spec.extra_std), dtype=torch.float32)
    return {
        'observation.state': {'mean': state_mean, 'std': state_std},
        'action': {'mean': state_mean[:joints].clone(), 'std': state_std[:joints].clone()},
    }


def make_untrained_bundle(out_dir: Path, spec: UntrainedSpec | None = None, progress: Progress | None = None) -> str:
    """Export a random-init tiny AdaMoE policy as a bundle (an UNTRAINED placeholder); return its bundle_id."""
    spec = spec or UntrainedSpec()
    with tempfile.TemporaryDirectory(prefix='adamoe_backbone_') as tmp:
        policy = make_tiny_adamoe_policy(spec, Path(tmp) / 'backbone')
        names = DatasetNames(
            state_names=[*spec.joint_names, *spec.extra_state_names], joint_names=list(spec.joint_names), fps=spec.fps
        )
        source = {'checkpoint': None, 'note': 'UNTRAINED placeholder (random init)', 'seed': spec.seed}
        return write_bundle(policy, Path(out_dir), names, untrained_stats(spec), source, progress=progress)
