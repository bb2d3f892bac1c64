"""Torch wrappers that split a SmolVLA-style flow-matching policy into the two exported graphs.

The prefix graph (images + tokens + state -> per-layer key/value cache) runs once per observation; the
denoise graph (x_t, t, cache -> velocity [+ routing]) runs num_flow_steps times. Both call LeRobot's own
`embed_prefix` / `denoise_step`, and the MoE layers run their own forward (its routing captured as the
graph's routing outputs), so the exported math is the trained math, not a re-implementation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import transformers.models.smolvlm.modeling_smolvlm as smolvlm_modeling
from lerobot.policies.common.vla_utils import make_att_2d_masks
from torch import Tensor, nn
from transformers import DynamicCache

from lerobot_policy_adamoe.export.family import expert_layers
from lerobot_policy_adamoe.moe import AdaMoEFeedForward, RoutingCapture, capture_routing, moe_layers


def find_moe_layers(flow: nn.Module) -> list[tuple[int, AdaMoEFeedForward]]:
    """(expert layer index, module) for every action-expert MLP that is an AdaMoE layer (SmolVLA, PI0, PI05)."""
    layers = expert_layers(flow)
    return [(i, layer.mlp) for i, layer in enumerate(layers) if isinstance(layer.mlp, AdaMoEFeedForward)]


def cache_tensors(cache: DynamicCache) -> list[Tensor]:
    """Flatten a prefill's K/V cache into the prefix graph's outputs: keys and values, layer by layer."""
    kv: list[Tensor] = []
    for layer in cache.layers:
        kv += [layer.keys, layer.values]
    return kv


def cache_from_tensors(kv: Sequence[Tensor], num_layers: int) -> DynamicCache:
    """Return a fresh cache holding the prefix graph's outputs.

    Fresh per call: the denoise step appends suffix K/V to self-attention layers, which must not leak into the
    next step (LeRobot crops; a graph input is immutable anyway).
    """
    cache = DynamicCache()
    for layer in range(num_layers):
        cache.update(kv[2 * layer], kv[2 * layer + 1], layer)
    return cache


def action_token_routing(
    captured: RoutingCapture, layers: list[AdaMoEFeedForward], x_t: Tensor
) -> tuple[Tensor, Tensor]:
    """Top-k expert indices and weights of the action tokens, (batch, layers, chunk, k), from one denoise step.

    Routing covers every suffix token; the action tokens are the last `chunk` of them (PI0's suffix starts with
    its state token, SmolVLA's is the action tokens alone).
    """
    batch, chunk = x_t.shape[0], x_t.shape[1]
    (step,) = captured.passes(layers)  # one denoise step runs each layer once
    indices = [r.topk_idx.reshape(batch, -1, r.topk_idx.shape[-1])[:, -chunk:] for r in step]
    weights = [r.topk_weight.reshape(batch, -1, r.topk_weight.shape[-1])[:, -chunk:] for r in step]
    return torch.stack(indices, dim=1).to(torch.int64), torch.stack(weights, dim=1).float()


class PrefixGraph(nn.Module):
    """Images + language + normalised padded state -> prefix pad mask and per-layer K/V cache."""

    def __init__(self, flow: nn.Module, num_cameras: int) -> None:
        super().__init__()
        self.flow = flow
        self.num_cameras = num_cameras

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        images = list(inputs[: self.num_cameras])
        lang_tokens, lang_mask, state = inputs[self.num_cameras :]
        # Every camera is present at runtime; a missing camera is an input error, not a masked slot.
        img_masks = [torch.ones(img.shape[0], dtype=torch.bool, device=img.device) for img in images]
        embs, pad_masks, att_masks = self.flow.embed_prefix(images, img_masks, lang_tokens, lang_mask, state=state)
        att_2d = make_att_2d_masks(pad_masks, att_masks)
        position_ids = torch.cumsum(pad_masks, dim=1) - 1
        _, cache = self.flow.vlm_with_expert.forward(
            attention_mask=att_2d,
            position_ids=position_ids,
            past_key_values=None,
            inputs_embeds=[embs, None],
            use_cache=True,
        )
        return (pad_masks, *cache_tensors(cache))


class DenoiseStepGraph(nn.Module):
    """One Euler-step velocity of the action expert against a fixed prefix cache (+ MoE routing)."""

    def __init__(self, flow: nn.Module, num_cache_layers: int) -> None:
        super().__init__()
        self.flow = flow
        self.num_cache_layers = num_cache_layers
        self.moe_layers = [module for _, module in find_moe_layers(flow)]

    def forward(self, x_t: Tensor, t: Tensor, prefix_pad_mask: Tensor, *kv: Tensor) -> tuple[Tensor, ...]:
        cache = cache_from_tensors(kv, self.num_cache_layers)
        with capture_routing() as captured:
            velocity = self.flow.denoise_step(
                prefix_pad_masks=prefix_pad_mask, past_key_values=cache, x_t=x_t, timestep=t
            )
        if not self.moe_layers:
            return (velocity,)
        return (velocity, *action_token_routing(captured, self.moe_layers, x_t))


def _record_position_ids(embeddings: nn.Module, image_hw: tuple[int, int]) -> Tensor:
    """Run the vision embeddings once eagerly and capture the patch position ids they use."""
    captured: list[Tensor] = []
    hook = embeddings.position_embedding.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        weight = embeddings.patch_embedding.weight
        channels = embeddings.patch_embedding.in_channels
        pixels = torch.zeros(1, channels, *image_hw, dtype=weight.dtype, device=weight.device)
        side = (image_hw[0] // embeddings.patch_size, image_hw[1] // embeddings.patch_size)
        with torch.no_grad():
            embeddings(pixels, torch.ones(1, *side, dtype=torch.bool, device=weight.device))
    finally:
        hook.remove()
    return captured[0].clone()


def _static_embeddings_forward(self: nn.Module, pixel_values: Tensor, patch_attention_mask: Tensor) -> Tensor:
    embeddings = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
    return embeddings + self.position_embedding(self.static_position_ids)


@contextlib.contextmanager
def traceable_vision(flow: nn.Module, image_hw: tuple[int, int]) -> Iterator[None]:
    """Make the SigLIP encoder traceable for whole images of one fixed size.

    Whole images have an all-ones patch mask, so (1) the bidirectional patch mask is a no-op and (2) the
    patch position ids are constants. Building them under the TorchScript tracer fails (transformers
    reads a traced shape as a deprecated tensor argument; a ScatterND gets mixed dtypes), so we record
    the ids eagerly and skip the mask while tracing.
    """
    embeddings = flow.vlm_with_expert.get_vlm_model().vision_model.embeddings
    embeddings.static_position_ids = _record_position_ids(embeddings, image_hw)
    embeddings_class = type(embeddings)
    original_forward = embeddings_class.forward
    original_mask = smolvlm_modeling.create_bidirectional_mask
    embeddings_class.forward = _static_embeddings_forward
    smolvlm_modeling.create_bidirectional_mask = lambda *args, **kwargs: None
    try:
        yield
    finally:
        embeddings_class.forward = original_forward
        smolvlm_modeling.create_bidirectional_mask = original_mask
        del embeddings.static_position_ids


EXPERT_GRAPHS = ('sparse', 'dense')


@contextlib.contextmanager
def export_experts(flow: nn.Module, expert_graph: str = 'sparse') -> Iterator[None]:
    """Trace the MoE layers' own 'sparse' path (every expert on its token subset, top-k FLOPs) or 'dense' one.

    'auto' would pick dense while tracing; the layer's sparse loop runs every expert, so a trace keeps them all.
    """
    if expert_graph not in EXPERT_GRAPHS:
        raise ValueError(f'expert_graph must be one of {EXPERT_GRAPHS}, got {expert_graph!r}')
    modules = moe_layers(flow)  # any base: only the action expert has MoE layers
    saved = [module.execution for module in modules]
    for module in modules:
        module.execution = expert_graph
    try:
        yield
    finally:
        for module, execution in zip(modules, saved, strict=True):
            module.execution = execution
