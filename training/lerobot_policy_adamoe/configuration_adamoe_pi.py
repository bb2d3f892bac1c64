"""`--policy.type=adamoe_pi0` / `adamoe_pi05`: LeRobot's PI0 / PI05 with AdaMoE FFNs in the action expert.

The configs extend `PI0Config` / `PI05Config`, so every PI0/PI05 field (variants, chunk size, image size,
dtype, freezing, ...) is available, plus the shared `AdaMoEOptions`. The AdaMoE per-group optimizer and
scheduler replace PI0's single-group ones, so PI0's `optimizer_lr`, `optimizer_weight_decay` and
`scheduler_*` fields have no effect here; set `base_lr`, `experts_lr`, `router_lr`, ... instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi05.configuration_pi05 import PI05Config

from lerobot_policy_adamoe.configuration_adamoe import AdaMoEOptions

PALIGEMMA_TOKENIZER = 'google/paligemma-3b-pt-224'


@dataclass
class AdaMoEPiOptions(AdaMoEOptions):
    """AdaMoE options plus what a PI base needs to run offline."""

    # PaliGemma tokenizer, a hub name or a local folder (LeRobot's PI processors always use the hub name).
    tokenizer_name: str = PALIGEMMA_TOKENIZER
    # Build the test-only tiny size of `tiny_pi` instead of the variants' real sizes (CPU tests only).
    tiny_test_model: bool = False


@PreTrainedConfig.register_subclass('adamoe_pi0')
@dataclass
class AdaMoEPI0Config(AdaMoEPiOptions, PI0Config):
    """PI0 config plus the AdaMoE options (MoE in the `gemma_expert` action expert)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.validate_moe()


@PreTrainedConfig.register_subclass('adamoe_pi05')
@dataclass
class AdaMoEPI05Config(AdaMoEPiOptions, PI05Config):
    """PI05 config plus the AdaMoE options (MoE in the adaRMS-conditioned `gemma_expert`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.validate_moe()
