"""Pre/post-processing of AdaMoE policies: exactly SmolVLA's (the MoE changes only the action expert)."""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig


def make_adamoe_pre_post_processors(
    config: AdaMoEConfig, dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None, **_: Any
) -> tuple[Any, Any]:
    """Return SmolVLA's (preprocessor, postprocessor) pipelines for an AdaMoE config."""
    return make_smolvla_pre_post_processors(config, dataset_stats=dataset_stats)
