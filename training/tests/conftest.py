"""Shared fixtures: a tiny offline SmolVLM backbone and a small synthetic LeRobot dataset (built once)."""

import pytest
import torch

from lerobot_policy_adamoe.testing import make_synthetic_dataset
from lerobot_policy_adamoe.tiny_base import make_tiny_backbone


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def tiny_backbone(tmp_path_factory):
    return make_tiny_backbone(tmp_path_factory.mktemp('backbone') / 'tiny_smolvlm')


@pytest.fixture(scope='session')
def synthetic_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('datasets') / 'synthetic'
    return make_synthetic_dataset(root, num_episodes=2, frames_per_episode=30)
