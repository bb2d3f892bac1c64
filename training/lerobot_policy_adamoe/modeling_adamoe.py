"""AdaMoEPolicy: LeRobot's SmolVLA with AdaMoE FFNs in the action expert, upcycled from a dense checkpoint.

`AdaMoEMixin` is the part every base shares (PI0/PI05: `modeling_adamoe_pi`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from safetensors.torch import load_file
from torch import Tensor, nn

from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig, AdaMoEOptions
from lerobot_policy_adamoe.moe import (
    AdaMoEFeedForward,
    RouterStats,
    RoutingCapture,
    capture_routing,
    mean_balance_loss,
    moe_layers,
    routing_statistics,
)
from lerobot_policy_adamoe.text_encoder import install_text_encoder

# Set while `from_pretrained` rebuilds a saved AdaMoE policy: its own weights follow, so the dense
# checkpoint named in `upcycle_from` must not be read again (it may not even exist on this machine).
_RESTORING = contextvars.ContextVar('adamoe_restoring', default=False)

DENSE_BASE_TYPES = ('smolvla', 'adamoe')


def param_group_of(name: str) -> str:
    """Optimizer group of a parameter: 'router' (router + scale adapter), 'experts' (routed) or 'base'."""
    if '.router.' in f'.{name}' or '.scale_adapter.' in f'.{name}':
        return 'router'
    if name.rsplit('.', 1)[-1].startswith('experts_'):
        return 'experts'
    return 'base'


def swap_expert_mlps(
    layers: nn.ModuleList, config: AdaMoEOptions, layer_indices: Sequence[int] | None = None
) -> list[int]:
    """Replace `layers[i].mlp` by an AdaMoE layer upcycled from it; return the swapped indices."""
    indices = list(range(len(layers))) if layer_indices is None else list(layer_indices)
    for i in indices:
        if not 0 <= i < len(layers):
            raise ValueError(f'moe layer index {i} out of range for an action expert with {len(layers)} layers')
        layers[i].mlp = AdaMoEFeedForward(
            layers[i].mlp,
            num_experts=config.num_experts,
            top_k=config.top_k,
            routing_mode=config.routing_mode,
            execution=config.moe_execution,
            noise_std=config.noise_std,
            gating_init_std=config.gating_init_std,
            function_preserving_init=config.function_preserving_init,
        )
    return indices


def smolvla_expert_layers(policy: SmolVLAPolicy) -> nn.ModuleList:
    """Return the decoder layers of SmolVLA's action expert (`lm_expert`)."""
    return policy.model.vlm_with_expert.lm_expert.layers


def pi0_expert_layers(policy: nn.Module) -> nn.ModuleList:
    """Return the decoder layers of PI0/PI05's action expert (`gemma_expert`, GemmaMLP FFNs)."""
    return policy.model.paligemma_with_expert.gemma_expert.model.layers


def load_dense_checkpoint(
    policy: nn.Module,
    folder: str | Path,
    base_types: Sequence[str] = DENSE_BASE_TYPES,
    fix_keys: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> None:
    """Load every weight of a dense LeRobot `pretrained_model` folder into `policy` (before the MoE swap).

    `fix_keys` maps the file's keys to the policy's (PI0/PI05 checkpoints converted from openpi need it).
    """
    folder = Path(folder)
    weights, config_file = folder / 'model.safetensors', folder / 'config.json'
    if not weights.is_file() or not config_file.is_file():
        raise FileNotFoundError(f'upcycle_from={folder}: expected model.safetensors and config.json there')
    base_type = json.loads(config_file.read_text()).get('type')
    if base_type not in base_types:
        raise ValueError(f'upcycle_from={folder}: config type {base_type!r} is not one of {tuple(base_types)}')
    state = load_file(str(weights))
    if fix_keys is not None:
        state = fix_keys(state)
    # A dense AdaMoE checkpoint (routing_mode='dense', e.g. a pretraining stage) carries its training-step counter;
    # the upcycled model starts its own balance-loss schedule, so the counter is not a base weight.
    state.pop('moe_train_step', None)
    own = policy.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = sorted(k for k in set(own) - set(state) if 'lm_head' not in k)
    if unexpected or missing:
        raise ValueError(
            f'upcycle_from={weights}: checkpoint does not match the base model '
            f'(missing {missing[:5]}{"..." if len(missing) > 5 else ""}, '
            f'unexpected {unexpected[:5]}{"..." if len(unexpected) > 5 else ""})'
        )
    mismatched = [k for k, v in state.items() if own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f'upcycle_from={weights}: shape mismatch for {mismatched[:5]}')
    policy.load_state_dict(state, strict=False)


@contextlib.contextmanager
def restoring() -> Iterator[None]:
    """Mark the policies built inside as restored from their own checkpoint (`upcycle_from` is not read)."""
    token = _RESTORING.set(True)
    try:
        yield
    finally:
        _RESTORING.reset(token)


class AdaMoEMixin:
    """The MoE half of an AdaMoE policy, put before a LeRobot flow-matching policy class in the bases.

    The subclass builds its base, then calls `install_moe`; `action_expert()` names the module whose FFNs
    were swapped. Forward adds the scheduled balance loss to the base's loss and logs expert usage;
    `get_optim_params` returns the three optimizer groups.
    """

    config: AdaMoEOptions
    moe_layer_indices: list[int]

    def action_expert(self) -> nn.Module:
        """Return the action expert whose decoder layers hold the AdaMoE FFNs."""
        raise NotImplementedError

    def install_moe(self, layers: nn.ModuleList, load_dense: Callable[[], None]) -> None:
        """Upcycle: load the dense base (`load_dense`, unless restoring), then swap the FFNs of `layers`."""
        if self.config.upcycle_from and not _RESTORING.get():
            load_dense()
        # Counts training forwards for the balance-loss schedule; saved with the weights so resume continues it.
        self.register_buffer('moe_train_step', torch.zeros((), dtype=torch.long))
        self.moe_layer_indices = []
        if self.config.routing_mode != 'dense':
            self.moe_layer_indices = swap_expert_mlps(layers, self.config, self.config.moe_layer_indices)

    @property
    def moe_modules(self) -> list[AdaMoEFeedForward]:
        """The AdaMoE layers of the action expert, in layer order."""
        return moe_layers(self.action_expert())

    def routing_stats(self, capture: RoutingCapture) -> RouterStats | None:
        """Per-layer routing statistics of the last pass in `capture` (None if it holds none, e.g. dense)."""
        passes = capture.passes(self.moe_modules)
        return routing_statistics(passes[-1]) if passes else None

    def get_optim_params(self) -> list[dict[str, Any]]:
        """Three AdamW groups (base incl. shared expert, routed experts, router + adapter) with own schedules."""
        buckets: dict[str, list[nn.Parameter]] = {'base': [], 'experts': [], 'router': []}
        for name, param in self.named_parameters():
            if param.requires_grad:
                buckets[param_group_of(name)].append(param)
        groups = []
        for group_name, schedule in self.config.group_schedules().items():
            if buckets[group_name]:
                groups.append(
                    {
                        'params': buckets[group_name],
                        'group_name': group_name,
                        'lr': schedule.peak_lr,
                        'weight_decay': schedule.weight_decay,
                        'warmup_steps': schedule.warmup_steps,
                        'final_lr': schedule.final_lr,
                    }
                )
        return groups

    def forward(self, batch: dict[str, Tensor], **kwargs: Any) -> tuple[Tensor, dict[str, Any]]:
        """Flow-matching loss + balance coefficient * balance loss (+ z-loss coefficient * z-loss)."""
        with capture_routing() as routing:
            flow_loss, loss_dict = super().forward(batch, **kwargs)
        loss_dict['flow_loss'] = float(flow_loss.detach().mean())
        if not self.moe_modules:
            return flow_loss, loss_dict
        (infos,) = routing.passes(self.moe_modules)  # a training forward runs each layer once
        balance, z_loss = mean_balance_loss(infos)
        coef = self.config.balance_coef(int(self.moe_train_step))
        loss = flow_loss + coef * balance
        if self.config.z_loss_coef > 0:
            loss = loss + self.config.z_loss_coef * z_loss
        if self.training:
            self.moe_train_step += 1
        stats = routing_statistics(infos)
        loss_dict.update(
            {
                'loss': float(loss.detach().mean()),
                'balance_loss': float(balance.detach()),
                'z_loss': float(z_loss.detach()),
                'balance_coef': coef,
            }
        )
        for expert, share in enumerate(stats.token_fraction.mean(dim=0).tolist()):
            loss_dict[f'expert{expert}_share'] = share
        return loss, loss_dict


class AdaMoEPolicy(AdaMoEMixin, SmolVLAPolicy):
    """SmolVLA flow-matching policy whose action-expert FFNs are AdaMoE layers (`--policy.type=adamoe`)."""

    config_class = AdaMoEConfig
    name = 'adamoe'

    def __init__(self, config: AdaMoEConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.config: AdaMoEConfig = config
        if config.text_encoder is not None:
            install_text_encoder(self.model.vlm_with_expert, config.text_encoder)
        self.install_moe(smolvla_expert_layers(self), lambda: load_dense_checkpoint(self, config.upcycle_from))

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, **kwargs: Any) -> AdaMoEPolicy:
        """Load a saved AdaMoE policy (its own weights; `upcycle_from` is not read again)."""
        with restoring():
            return super().from_pretrained(pretrained_name_or_path, **kwargs)

    def action_expert(self) -> nn.Module:
        """Return SmolVLA's action expert (`lm_expert`)."""
        return self.model.vlm_with_expert.lm_expert
