"""Per-group AdamW + warmup/cosine schedule, registered as LeRobot optimizer/scheduler choices.

Each param group from `AdaMoEPolicy.get_optim_params` carries its own `lr` (peak), `weight_decay`,
`warmup_steps` and `final_lr`; the scheduler reads them, so `lerobot-train` needs no extra flags.
The schedule mirrors optax's warmup_cosine_decay_schedule used by the reference: linear warmup from
peak/(warmup+1) to peak, then cosine decay to final_lr at `num_decay_steps`, constant after.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from lerobot.optim.optimizers import AdamWConfig, OptimizerConfig, OptimizerParams
from lerobot.optim.schedulers import LRSchedulerConfig
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class ParamGroupSchedule:
    """Learning-rate schedule and weight decay of one parameter group."""

    peak_lr: float
    weight_decay: float
    warmup_steps: int
    final_lr: float


def warmup_cosine_lr(step: int, schedule: ParamGroupSchedule, decay_steps: int) -> float:
    """Learning rate at `step`: linear warmup from peak/(warmup+1), cosine to final_lr at decay_steps."""
    peak, warmup = schedule.peak_lr, schedule.warmup_steps
    if step < warmup:
        init = peak / (warmup + 1)
        return init + (peak - init) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, decay_steps - warmup))
    return schedule.final_lr + (peak - schedule.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@OptimizerConfig.register_subclass('adamoe_adamw')
@dataclass
class AdaMoEAdamWConfig(AdamWConfig):
    """AdamW whose param groups (with their own lr/weight_decay) come from the policy."""

    def build(self, params: OptimizerParams) -> torch.optim.Optimizer:
        """Build torch AdamW; group-level lr/weight_decay override the defaults here."""
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{'params': groups}]
        for group in groups:
            group.setdefault('warmup_steps', 0)
            group.setdefault('final_lr', group.get('lr', self.lr))
        return torch.optim.AdamW(groups, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)


@LRSchedulerConfig.register_subclass('adamoe_multigroup_cosine')
@dataclass
class MultiGroupCosineSchedulerConfig(LRSchedulerConfig):
    """Per-group warmup + cosine decay; warmup/decay are scaled down when training is shorter than decay."""

    num_warmup_steps: int | None = None  # unused: each group has its own warmup
    num_decay_steps: int = 90_000

    def build(self, optimizer: Optimizer, num_training_steps: int) -> LambdaLR:
        """Build a LambdaLR with one lambda per param group."""
        scale = min(1.0, num_training_steps / self.num_decay_steps) if self.num_decay_steps > 0 else 1.0
        decay_steps = max(1, round(self.num_decay_steps * scale))
        if scale < 1.0:
            logging.info(
                'AdaMoE scheduler: %d training steps < %d decay steps, schedule scaled by %.3g',
                num_training_steps,
                self.num_decay_steps,
                scale,
            )
        lambdas: list[Callable[[int], float]] = []
        for group in optimizer.param_groups:
            peak = group.get('initial_lr', group['lr'])
            schedule = ParamGroupSchedule(
                peak_lr=peak,
                weight_decay=group['weight_decay'],
                warmup_steps=int(round(group.get('warmup_steps', 0) * scale)),
                final_lr=group.get('final_lr', peak),
            )
            lambdas.append(_relative_lambda(schedule, decay_steps))
        return LambdaLR(optimizer, lambdas, -1)


def _relative_lambda(schedule: ParamGroupSchedule, decay_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        return warmup_cosine_lr(step, schedule, decay_steps) / schedule.peak_lr if schedule.peak_lr > 0 else 0.0

    return factor
