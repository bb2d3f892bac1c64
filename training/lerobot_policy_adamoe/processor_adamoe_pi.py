"""Pre/post-processing of the AdaMoE PI0/PI05 policies: LeRobot's PI0/PI05 pipelines, step for step.

LeRobot's `make_pi0_pre_post_processors` / `make_pi05_pre_post_processors` load the PaliGemma tokenizer by its
hub name; these assemble the same steps in the same order with `config.tokenizer_name`, so a local tokenizer
folder works offline. The MoE changes nothing here.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.pi0.processor_pi0 import Pi0NewLineProcessor
from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
from lerobot.processor import (
    AbsoluteActionsProcessorStep,
    ProcessorStep,
    RelativeActionsProcessorStep,
    TokenizerProcessorStep,
    make_default_policy_processor_steps,
    make_policy_processor_pipelines,
)

from lerobot_policy_adamoe.configuration_adamoe_pi import AdaMoEPI0Config, AdaMoEPI05Config, AdaMoEPiOptions


def _tokenizer_step(config: AdaMoEPiOptions) -> TokenizerProcessorStep:
    return TokenizerProcessorStep(
        tokenizer_name=config.tokenizer_name,
        max_length=config.tokenizer_max_length,
        padding_side='right',
        padding='max_length',
    )


def _relative_step(config: AdaMoEPiOptions) -> RelativeActionsProcessorStep:
    return RelativeActionsProcessorStep(
        enabled=config.use_relative_actions,
        exclude_joints=config.relative_exclude_joints,
        action_names=config.action_feature_names,
    )


def _output_steps(steps: Any, relative: RelativeActionsProcessorStep, config: AdaMoEPiOptions) -> list[ProcessorStep]:
    return [
        steps.unnormalize,
        AbsoluteActionsProcessorStep(enabled=config.use_relative_actions, relative_step=relative),
        steps.to_cpu,
    ]


def make_adamoe_pi0_pre_post_processors(
    config: AdaMoEPI0Config, dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None
) -> tuple[Any, Any]:
    """Return PI0's (preprocessor, postprocessor): tokenize the task (newline-terminated), then normalise."""
    steps = make_default_policy_processor_steps(config, dataset_stats)
    relative = _relative_step(config)
    input_steps: list[ProcessorStep] = [
        steps.rename_observations,
        steps.add_batch_dim,
        Pi0NewLineProcessor(),
        _tokenizer_step(config),
        steps.to_device,
        relative,
        steps.normalize,
    ]
    return make_policy_processor_pipelines(input_steps=input_steps, output_steps=_output_steps(steps, relative, config))


def make_adamoe_pi05_pre_post_processors(
    config: AdaMoEPI05Config, dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None
) -> tuple[Any, Any]:
    """Return PI05's: normalise first, since the prompt carries the normalised state as 256-bin tokens."""
    steps = make_default_policy_processor_steps(config, dataset_stats)
    relative = _relative_step(config)
    input_steps: list[ProcessorStep] = [
        steps.rename_observations,
        steps.add_batch_dim,
        relative,
        steps.normalize,
        Pi05PrepareStateTokenizerProcessorStep(max_state_dim=config.max_state_dim),
        _tokenizer_step(config),
        steps.to_device,
    ]
    return make_policy_processor_pipelines(input_steps=input_steps, output_steps=_output_steps(steps, relative, config))
