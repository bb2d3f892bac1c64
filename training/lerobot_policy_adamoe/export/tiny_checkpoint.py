"""A tiny AdaMoE checkpoint trained for a few steps on synthetic batches (for export tests and benchmarks)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_tiny_adamoe_policy, untrained_stats

TRAIN_INSTRUCTIONS = ('pick up the red cube', 'push the block to the left', 'open the gripper')


def _synthetic_batch(spec: UntrainedSpec, batch_size: int, gen: torch.Generator) -> dict:
    stats = untrained_stats(spec)['observation.state']
    state = stats['mean'] + stats['std'] * torch.randn(batch_size, stats['mean'].shape[0], generator=gen)
    joints = len(spec.joint_names)
    # Actions continue the state smoothly, so a few steps move the model away from its random init.
    ramp = torch.linspace(0, 1, spec.horizon)[None, :, None]
    action = state[:, None, :joints] + 0.2 * ramp * torch.sign(state[:, None, :joints])
    batch = {
        f'observation.images.{cam}': torch.rand(batch_size, 3, *spec.image_hw, generator=gen) for cam in spec.cameras
    }
    batch.update(
        {
            'observation.state': state,
            'action': action,
            'action_is_pad': torch.zeros(batch_size, spec.horizon, dtype=torch.bool),
            'task': [TRAIN_INSTRUCTIONS[i % len(TRAIN_INSTRUCTIONS)] for i in range(batch_size)],
        }
    )
    return batch


def train_tiny_checkpoint(
    out_dir: Path, spec: UntrainedSpec, backbone_dir: Path | None = None, steps: int = 4, batch_size: int = 2
) -> Path:
    """Train a tiny policy for `steps` AdamW steps and save it as a LeRobot pretrained_model folder."""
    from lerobot_policy_adamoe.processor_adamoe import make_adamoe_pre_post_processors

    out_dir = Path(out_dir)
    backbone_dir = Path(backbone_dir or tempfile.mkdtemp(prefix='adamoe_backbone_')) / 'backbone'
    policy = make_tiny_adamoe_policy(spec, backbone_dir)
    preprocessor, postprocessor = make_adamoe_pre_post_processors(policy.config, untrained_stats(spec))
    # Train everything (incl. the frozen-by-default VLM is irrelevant here): routers must move too.
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    gen = torch.Generator().manual_seed(spec.seed)
    policy.train()
    for _ in range(steps):
        loss, _info = policy.forward(preprocessor(_synthetic_batch(spec, batch_size, gen)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    policy.save_pretrained(out_dir)
    preprocessor.save_pretrained(out_dir)
    postprocessor.save_pretrained(out_dir)
    return out_dir
