"""Real-size bases from a locally written config: random weights, nothing downloaded (export and benchmarks).

SmolVLA (`lerobot/smolvla_base`) on SmolVLM2-500M-Video-Instruct: text 960 wide (intermediate 2560, 15 heads,
5 KV heads, 49280-row embedding) of which SmolVLA keeps the first 16 of 32 layers; SigLIP vision 768 wide,
12 layers, 12 heads, patch 16 at 512x512 with pixel-shuffle scale 4 (64 tokens per image); action expert
0.75 x 960 = 720 wide (SmolVLA's default multiplier); chunk 50, 10 flow steps. About 450 M parameters.

π0 (openpi's pi0, LeRobot's PI0 defaults): PaliGemma 3B (gemma_2b: 18 layers, width 2048, FFN 16384; SigLIP So400m
at 224x224, 256 tokens per image) and the gemma_300m action expert (18 layers, width 1024, FFN 4096) that holds the
MoE layers, as in the AdaMoE paper; chunk 50, 10 flow steps. LeRobot's build has 4.0 B parameters (with two LM heads
PI0 never runs: PaliGemma's untied 257152 x 2048 and the action expert's 257152 x 1024), 4.9 B with 4 routed experts;
3.2 B and 4.1 B without the heads (`drop_unused_lm_heads`).

π0-300m (the issue's "≈1 B" variant): the same with PaliGemma's language model at the gemma_300m shape too (18 layers,
width 1024, FFN 4096, the 257152-row embedding). LeRobot fixes SigLIP's projection to 2048 outputs (gemma_2b's width),
while openpi projects to the language model's width for every variant (`num_classes=paligemma_config.width`), which
`vision_projected_to_text_width()` does. 1.83 B parameters in LeRobot's build, 1.30 B without the LM heads, 2.21 B
with 4 routed experts.

Both π0 sizes take π0's interface (`pi0_interface`): openpi's three image slots (a base and two wrist cameras; LeRobot's
PI0 takes whatever cameras the dataset has and has no default count), here the ALOHA profile's three cameras at the
model's image size, 14 joints; the prompt is PI0Config's own tokenizer_max_length (48, openpi's for π0).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from unittest import mock

import torch
from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi_gemma import PaliGemmaForConditionalGenerationWithPiGemma

from adamoe_contract.robots import load_robot_profile
from lerobot_policy_adamoe.configuration_adamoe_pi import AdaMoEPI0Config
from lerobot_policy_adamoe.export.untrained import UntrainedSpec, interface_features
from lerobot_policy_adamoe.modeling_adamoe_pi import AdaMoEPI0Policy

SMOLVLM2_500M: dict[str, Any] = {  # make_tiny_backbone() arguments
    'text_hidden': 960,
    'text_intermediate': 2560,
    'layers': 32,
    'text_heads': 15,
    'text_kv_heads': 5,
    'vision_hidden': 768,
    'vision_intermediate': 3072,
    'vision_layers': 12,
    'vision_heads': 12,
    'image_size': 512,
    'patch_size': 16,
    'scale_factor': 4,
    'embedding_rows': 49280,
}
# noise_std: distinct routed experts, as after training. With identical upcycled copies the exporter would
# deduplicate the per-expert weights, and the bundle and its memory traffic would look one expert wide.
SMOLVLA_CONFIG: dict[str, Any] = {'num_vlm_layers': 16, 'tokenizer_max_length': 48, 'noise_std': 0.02}
SMOLVLA_IMAGE_HW = (512, 512)
SMOLVLA_CHUNK = 50
SMOLVLA_FLOW_STEPS = 10


def smolvla_spec(routing_mode: str, num_experts: int = 4, top_k: int = 1, seed: int = 0) -> UntrainedSpec:
    """Full-size SmolVLA (dense) or SmolVLA AdaMoE with the SO-101 interface, random init."""
    return UntrainedSpec(
        image_hw=SMOLVLA_IMAGE_HW,
        horizon=SMOLVLA_CHUNK,
        num_flow_steps=SMOLVLA_FLOW_STEPS,
        routing_mode=routing_mode,
        num_experts=num_experts,
        top_k=top_k,
        seed=seed,
        config_overrides=dict(SMOLVLA_CONFIG),
        backbone=dict(SMOLVLM2_500M),
    )


PI0_CONFIG: dict[str, Any] = {
    'paligemma_variant': 'gemma_2b',
    'action_expert_variant': 'gemma_300m',
    'chunk_size': 50,
    'n_action_steps': 50,
    'num_inference_steps': 10,
    'noise_std': 0.02,  # distinct routed experts, as for SmolVLA above
}


def pi0_config(routing_mode: str, num_experts: int = 4, top_k: int = 1, **overrides: Any) -> AdaMoEPI0Config:
    """Full-size π0 (dense) or π0 AdaMoE, random init; `overrides` are further PI0Config fields (dtype, device)."""
    return AdaMoEPI0Config(
        **{**PI0_CONFIG, 'routing_mode': routing_mode, 'num_experts': num_experts, 'top_k': top_k, **overrides}
    )


# PaliGemma's Gemma variant of each π0 size (the action expert is gemma_300m in both).
PI0_VLM_VARIANTS = {'pi0_300m': 'gemma_300m', 'pi0': 'gemma_2b'}
ALOHA = load_robot_profile('aloha')


def pi0_interface(image_hw: tuple[int, int]) -> UntrainedSpec:
    """π0's interface: three cameras (ALOHA's cam_high and two wrists) at `image_hw`, 14 joints, no extra state."""
    return UntrainedSpec(
        cameras=ALOHA.camera_names,
        image_hw=image_hw,
        joint_names=ALOHA.joint_names,
        extra_state_names=(),
        extra_mean=(),
        extra_std=(),
    )


@contextlib.contextmanager
def vision_projected_to_text_width() -> Iterator[None]:
    """While open, LeRobot's PI0 projects SigLIP to its PaliGemma's text width, as openpi does (module docstring)."""

    def paligemma(config: Any) -> PaliGemmaForConditionalGenerationWithPiGemma:
        config.vision_config.projection_dim = config.text_config.hidden_size
        return PaliGemmaForConditionalGenerationWithPiGemma(config=config)

    with mock.patch.object(modeling_pi0, 'PaliGemmaForConditionalGenerationWithPiGemma', paligemma):
        yield


def drop_unused_lm_heads(policy: AdaMoEPI0Policy) -> int:
    """Free the two LM heads PI0 builds but never runs (no bundle graph holds them); return the parameters freed."""
    pair = policy.model.paligemma_with_expert
    freed = 0
    for model in (pair.paligemma, pair.gemma_expert):
        freed += model.lm_head.weight.numel()
        model.lm_head = None
    return freed


def make_pi0_policy(config: AdaMoEPI0Config, spec: UntrainedSpec) -> AdaMoEPI0Policy:
    """Random-init π0 (dense or AdaMoE, `config.routing_mode`) with spec's interface, without its unused LM heads."""
    config.input_features, config.output_features = interface_features(spec)
    torch.manual_seed(spec.seed)
    with vision_projected_to_text_width():
        policy = AdaMoEPI0Policy(config).eval()
    drop_unused_lm_heads(policy)
    return policy
