"""`--policy.type=adamoe`: a SmolVLA-style flow-matching VLA whose action-expert FFNs are AdaMoE layers.

`AdaMoEOptions` holds the MoE, balance-loss, upcycling and per-group optimizer fields that every AdaMoE
policy type shares (SmolVLA here, PI0/PI05 in `configuration_adamoe_pi`). `AdaMoEConfig` extends
`SmolVLAConfig` with them, so every SmolVLA field (backbone, chunk size, image size, ...) is available.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

from adamoe_contract.spec import ROUTING_MODES
from lerobot_policy_adamoe.moe import MOE_EXECUTIONS
from lerobot_policy_adamoe.optim import AdaMoEAdamWConfig, MultiGroupCosineSchedulerConfig, ParamGroupSchedule
from lerobot_policy_adamoe.text_encoder import TEXT_ENCODERS

SUPPORTED_BASES = ('smolvla', 'pi0', 'pi05')


@dataclass
class AdaMoEOptions:
    """AdaMoE routing, balance-loss schedule, upcycling and three optimizer groups (shared by all bases).

    Put it before the base config class (`class X(AdaMoEOptions, BaseConfig)`), so its optimizer and
    scheduler presets replace the base's.
    """

    num_experts: int = 4
    top_k: int = 1
    # "adamoe": router selects, scale adapter adds to the weight; "vanilla": weight = router prob;
    # "dense": no MoE at all (the base model, for ablations).
    routing_mode: str = 'adamoe'
    moe_execution: str = 'auto'
    # Action-expert layer indices that get an MoE FFN; None = all layers (as in the reference).
    moe_layer_indices: list[int] | None = None
    # Upcycling: routed expert = dense FFN + N(0, noise_std^2); router and adapter ~ N(0, gating_init_std^2).
    noise_std: float = 0.0
    gating_init_std: float = 0.006
    # Start exactly equal to the dense model (adamoe only): see moe.py for the construction.
    function_preserving_init: bool = False
    # LeRobot `pretrained_model` folder of a dense base of the same kind (a SmolVLA, PI0 or PI05 fine-tune).
    upcycle_from: str | None = None

    # Reference schedule: 0.01 for the first 500 steps, then 0.005. Router z-loss is logged, added if > 0.
    balance_loss_coef: float = 0.01
    balance_loss_coef_final: float = 0.005
    balance_loss_switch_step: int = 500
    z_loss_coef: float = 0.0

    # Per-group AdamW (reference LIBERO values): base (incl. shared expert), routed experts, router+adapter.
    optimizer_betas: tuple[float, float] = (0.9, 0.95)
    optimizer_eps: float = 1e-8
    optimizer_grad_clip_norm: float = 1.0
    optimizer_decay_steps: int = 90_000
    base_lr: float = 2.5e-5
    base_weight_decay: float = 1e-6
    base_warmup_steps: int = 1000
    base_final_lr: float = 1e-6
    experts_lr: float = 2.5e-5
    experts_weight_decay: float = 1e-6
    experts_warmup_steps: int = 1000
    experts_final_lr: float = 1e-6
    router_lr: float = 5e-5
    router_weight_decay: float = 1e-6
    router_warmup_steps: int = 100
    router_final_lr: float = 1e-6

    def validate_moe(self) -> None:
        """Raise ValueError for inconsistent MoE fields (each config type calls this from __post_init__)."""
        if self.routing_mode not in ROUTING_MODES:
            raise ValueError(f'routing_mode must be one of {ROUTING_MODES}, got {self.routing_mode!r}')
        if self.moe_execution not in MOE_EXECUTIONS:
            raise ValueError(f'moe_execution must be one of {MOE_EXECUTIONS}, got {self.moe_execution!r}')
        if self.num_experts < 1 or not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f'need 1 <= top_k <= num_experts, got top_k={self.top_k}, E={self.num_experts}')
        if self.noise_std < 0 or self.gating_init_std < 0:
            raise ValueError('noise_std and gating_init_std must be >= 0')
        if self.function_preserving_init and self.routing_mode != 'adamoe':
            raise ValueError("function_preserving_init needs routing_mode='adamoe'")

    def group_schedules(self) -> dict[str, ParamGroupSchedule]:
        """Peak LR, weight decay, warmup and final LR per optimizer group."""
        return {
            'base': ParamGroupSchedule(
                self.base_lr, self.base_weight_decay, self.base_warmup_steps, self.base_final_lr
            ),
            'experts': ParamGroupSchedule(
                self.experts_lr, self.experts_weight_decay, self.experts_warmup_steps, self.experts_final_lr
            ),
            'router': ParamGroupSchedule(
                self.router_lr, self.router_weight_decay, self.router_warmup_steps, self.router_final_lr
            ),
        }

    def get_optimizer_preset(self) -> AdaMoEAdamWConfig:
        """AdamW over the groups from the policy's `get_optim_params` (each carries its own lr/wd)."""
        return AdaMoEAdamWConfig(
            lr=self.base_lr,
            betas=self.optimizer_betas,
            eps=self.optimizer_eps,
            weight_decay=self.base_weight_decay,
            grad_clip_norm=self.optimizer_grad_clip_norm,
        )

    def get_scheduler_preset(self) -> MultiGroupCosineSchedulerConfig:
        """Warmup + cosine decay to each group's final LR, read from the param groups."""
        return MultiGroupCosineSchedulerConfig(num_warmup_steps=None, num_decay_steps=self.optimizer_decay_steps)

    def balance_coef(self, step: int) -> float:
        """Balance-loss coefficient at a training step (reference: 0.01 up to step 500, then 0.005)."""
        return self.balance_loss_coef if step < self.balance_loss_switch_step else self.balance_loss_coef_final


@PreTrainedConfig.register_subclass('adamoe')
@dataclass
class AdaMoEConfig(AdaMoEOptions, SmolVLAConfig):
    """SmolVLA config plus the AdaMoE options."""

    # Base VLA whose action expert gets the MoE. This type builds "smolvla"; PI0/PI05 have their own
    # policy types (`adamoe_pi0`, `adamoe_pi05`), whose fields are PI0's/PI05's.
    base: str = 'smolvla'
    # A frozen pretrained sentence encoder for the instruction (a name in text_encoder.TEXT_ENCODERS); None keeps
    # SmolVLA's token embedding. The backbone folder must carry that encoder's tokenizer (make_tiny_backbone).
    text_encoder: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base not in SUPPORTED_BASES:
            raise ValueError(f'base must be one of {SUPPORTED_BASES}, got {self.base!r}')
        if self.base != 'smolvla':
            raise NotImplementedError(
                f'base={self.base!r}: --policy.type=adamoe builds SmolVLA; for PI0/PI05 use '
                f'--policy.type=adamoe_{self.base} (configuration_adamoe_pi)'
            )
        self.validate_moe()
        if self.text_encoder is not None:
            if self.text_encoder not in TEXT_ENCODERS:
                raise ValueError(f'text_encoder must be None or one of {tuple(TEXT_ENCODERS)}: {self.text_encoder!r}')
            if self.add_image_special_tokens:
                raise ValueError('text_encoder embeds instruction tokens only: add_image_special_tokens must be false')
