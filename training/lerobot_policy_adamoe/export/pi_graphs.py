"""The two exported graphs of a LeRobot PI0 / PI05 policy (dense or AdaMoE), traced from LeRobot's own code.

- prefix: SigLIP + PaliGemma over the images and tokens -> prefix pad mask and the per-layer K/V cache, as
  `sample_actions` prefills it. PI05's tokens already carry the discretised state (its processor writes it
  into the prompt), so its prefix takes no state.
- denoise: one Euler-step velocity of the action expert (MoE layers included) against that cache, through
  LeRobot's `denoise_step`: PI0 embeds the state as a suffix token (so its denoise graph takes `state`), PI05
  conditions every expert norm on the time through adaRMS. With AdaMoE layers it also returns the routing
  of the action tokens, as the SmolVLA graphs do.

Inputs and outputs use the bundle names of `adamoe_contract.bundle_format`; images are (1, 3, h, w) in
[-1, 1] at the model size (PI's `_preprocess_images` output), the state is normalised and zero-padded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d
from torch import Tensor, nn

from adamoe_contract import bundle_format as fmt
from lerobot_policy_adamoe.export.external_data import scratch_file
from lerobot_policy_adamoe.export.family import model_family
from lerobot_policy_adamoe.export.graphs import (
    action_token_routing,
    cache_from_tensors,
    cache_tensors,
    export_experts,
)
from lerobot_policy_adamoe.export.metadata import camera_names
from lerobot_policy_adamoe.export.onnx_export import OPSET, example_language_inputs, trace_graphs
from lerobot_policy_adamoe.export.onnx_ops import export_symbolics
from lerobot_policy_adamoe.moe import capture_routing, moe_layers


def takes_state(flow: nn.Module) -> bool:
    """Whether the denoise step takes the state (PI0: a suffix token); PI05 has it in the prompt tokens."""
    return fmt.STATE_INPUT_GRAPH[model_family(flow)] == 'denoise'


class PiPrefixGraph(nn.Module):
    """Images + language tokens -> prefix pad mask and the PaliGemma K/V cache of every layer."""

    def __init__(self, flow: nn.Module, num_cameras: int) -> None:
        super().__init__()
        self.flow = flow
        self.num_cameras = num_cameras

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        images = list(inputs[: self.num_cameras])
        lang_tokens, lang_mask = inputs[self.num_cameras :]
        # Every camera is present at runtime; a missing camera is an input error, not a masked slot.
        img_masks = [torch.ones(img.shape[0], dtype=torch.bool, device=img.device) for img in images]
        embs, pad_masks, att_masks = self.flow.embed_prefix(images, img_masks, lang_tokens, lang_mask)
        att_4d = prepare_attention_masks_4d(make_att_2d_masks(pad_masks, att_masks))
        position_ids = torch.cumsum(pad_masks, dim=1) - 1
        language_model = self.flow.paligemma_with_expert.paligemma.model.language_model
        language_model.config._attn_implementation = 'eager'  # as sample_actions sets it before the prefill
        _, cache = self.flow.paligemma_with_expert.forward(
            attention_mask=att_4d,
            position_ids=position_ids,
            past_key_values=None,
            inputs_embeds=[embs, None],
            use_cache=True,
        )
        return (pad_masks, *cache_tensors(cache))


class PiDenoiseStepGraph(nn.Module):
    """One Euler-step velocity of the action expert against a fixed prefix cache (+ MoE routing)."""

    def __init__(self, flow: nn.Module, num_cache_layers: int) -> None:
        super().__init__()
        self.flow = flow
        self.num_cache_layers = num_cache_layers
        self.with_state = takes_state(flow)
        self.moe_layers = moe_layers(flow.paligemma_with_expert.gemma_expert)

    def forward(self, x_t: Tensor, t: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        state_args = {'state': rest[0]} if self.with_state else {}
        prefix_pad_mask, *kv = rest[1:] if self.with_state else rest
        cache = cache_from_tensors(kv, self.num_cache_layers)
        with capture_routing() as captured:
            velocity = self.flow.denoise_step(
                **state_args, prefix_pad_masks=prefix_pad_mask, past_key_values=cache, x_t=x_t, timestep=t
            )
        if not self.moe_layers:
            return (velocity,)
        return (velocity, *action_token_routing(captured, self.moe_layers, x_t))


def example_pi_prefix_inputs(policy: nn.Module) -> dict[str, Tensor]:
    """Build representative prefix inputs (values only matter for tracing; the shapes get frozen)."""
    config = policy.config
    gen = torch.Generator().manual_seed(0)
    height, width = config.image_resolution
    inputs = {
        fmt.image_input_name(cam): torch.rand(1, 3, height, width, generator=gen) * 2 - 1
        for cam in camera_names(config)
    }
    return inputs | example_language_inputs(config.tokenizer_max_length, gen)


@torch.no_grad()
def export_pi_graphs(policy: nn.Module, scratch: Path, expert_graph: str = 'sparse') -> dict[str, Any]:
    """Trace prefix.onnx and denoise.onnx of a PI0/PI05 policy (fp32) into scratch (see `place_graphs`).

    Returns both graphs' I/O for bundle.json, like `onnx_export.export_graphs` for SmolVLA.
    """
    flow, config = policy.model, policy.config
    prefix = PiPrefixGraph(flow, len(camera_names(config))).eval()
    gen = torch.Generator().manual_seed(1)
    denoise_inputs = {
        fmt.X_T: torch.randn(1, config.chunk_size, config.max_action_dim, generator=gen),
        fmt.TIME: torch.tensor([0.7]),
    }
    if takes_state(flow):
        denoise_inputs[fmt.STATE] = torch.randn(1, config.max_state_dim, generator=gen)
    with export_experts(flow, expert_graph), export_symbolics(OPSET):
        return trace_graphs(
            prefix,
            example_pi_prefix_inputs(policy),
            lambda num_layers: PiDenoiseStepGraph(flow, num_layers),
            denoise_inputs,
            (scratch_file(scratch, fmt.PREFIX_FILE), scratch_file(scratch, fmt.DENOISE_FILE)),
        )
