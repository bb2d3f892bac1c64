"""AdaMoEPI0Policy / AdaMoEPI05Policy: LeRobot's PI0 / PI05 with AdaMoE FFNs in the `gemma_expert` action expert.

As in the AdaMoE reference (a pi0 fork), only the action expert's FFNs become MoE layers; PaliGemma and SigLIP
stay dense. LeRobot's layer code reads `mlp.up_proj.weight.dtype`; the shared expert keeps that name.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from lerobot.policies.pi0.modeling_pi0 import PI0Policy
from lerobot.policies.pi05.modeling_pi05 import PI05Policy
from lerobot.policies.pretrained import PreTrainedPolicy
from torch import Tensor, nn

from lerobot_policy_adamoe.configuration_adamoe_pi import AdaMoEPI0Config, AdaMoEPI05Config, AdaMoEPiOptions
from lerobot_policy_adamoe.modeling_adamoe import AdaMoEMixin, load_dense_checkpoint, pi0_expert_layers, restoring
from lerobot_policy_adamoe.tiny_pi import tiny_pi_sizes


class AdaMoEPiMixin(AdaMoEMixin):
    """What the PI0 and PI05 AdaMoE policies share: the build, upcycling from a PI checkpoint, strict reload."""

    config: AdaMoEPiOptions
    # Config types of the dense `pretrained_model` folders this policy upcycles from.
    dense_types: tuple[str, ...] = ()

    def __init__(self, config: AdaMoEPiOptions, **kwargs: Any) -> None:
        with tiny_pi_sizes() if config.tiny_test_model else contextlib.nullcontext():
            super().__init__(config, **kwargs)
        self.install_moe(pi0_expert_layers(self), self._load_dense_base)

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *, strict: bool = True, **kwargs: Any) -> Any:
        """Load a saved AdaMoE PI policy with LeRobot's generic loader, strictly (`upcycle_from` is not read).

        PI0Policy's own loader exists to remap openpi checkpoints and only prints load errors; an AdaMoE
        checkpoint is written by LeRobot itself, so every key must match.
        """
        with restoring():
            return PreTrainedPolicy.from_pretrained.__func__(cls, pretrained_name_or_path, strict=strict, **kwargs)

    def action_expert(self) -> nn.Module:
        """Return PI0/PI05's action expert (`gemma_expert`)."""
        return self.model.paligemma_with_expert.gemma_expert

    def _load_dense_base(self) -> None:
        load_dense_checkpoint(self, self.config.upcycle_from, self.dense_types, fix_keys=self._policy_keys)

    def _policy_keys(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        # The keys PI0Policy.from_pretrained loads: its openpi fix-ups, then the "model." prefix where absent.
        fixed = self._fix_pytorch_state_dict_keys(state, self.config)
        return {key if key.startswith('model.') else f'model.{key}': value for key, value in fixed.items()}


class AdaMoEPI0Policy(AdaMoEPiMixin, PI0Policy):
    """PI0 (PaliGemma + gemma_300m action expert) with AdaMoE FFNs (`--policy.type=adamoe_pi0`)."""

    config_class = AdaMoEPI0Config
    name = 'adamoe_pi0'
    dense_types = ('pi0', 'adamoe_pi0')


class AdaMoEPI05Policy(AdaMoEPiMixin, PI05Policy):
    """PI0.5 (adaRMS time conditioning, state as tokens) with AdaMoE FFNs (`--policy.type=adamoe_pi05`)."""

    config_class = AdaMoEPI05Config
    name = 'adamoe_pi05'
    dense_types = ('pi05', 'adamoe_pi05')
