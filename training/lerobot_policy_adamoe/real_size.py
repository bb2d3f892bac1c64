"""Real-size bases from a locally written config: random weights, nothing downloaded (export and benchmarks).

SmolVLA (`lerobot/smolvla_base`) on SmolVLM2-500M-Video-Instruct: text 960 wide (intermediate 2560, 15 heads,
5 KV heads, 49280-row embedding) of which SmolVLA keeps the first 16 of 32 layers; SigLIP vision 768 wide,
12 layers, 12 heads, patch 16 at 512x512 with pixel-shuffle scale 4 (64 tokens per image); action expert
0.75 x 960 = 720 wide (SmolVLA's default multiplier); chunk 50, 10 flow steps. About 450 M parameters.

π0 (openpi's pi0, LeRobot's PI0 defaults): PaliGemma 3B (gemma_2b: 18 layers, width 2048, FFN 16384; SigLIP So400m
at 224x224, 256 tokens per image) and the gemma_300m action expert (18 layers, width 1024, FFN 4096) that holds the
MoE layers, as in the AdaMoE paper; chunk 50, 10 flow steps. LeRobot's build has 4.0 B parameters (with the action
expert's unused 257152-row LM head), 4.9 B with 4 routed experts.
"""

from __future__ import annotations

from typing import Any

from lerobot_policy_adamoe.configuration_adamoe_pi import AdaMoEPI0Config
from lerobot_policy_adamoe.export.untrained import UntrainedSpec

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
