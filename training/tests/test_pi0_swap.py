"""The AdaMoE swap on PI0/PI05's action expert layers (LeRobot's PiGemma decoder with GemmaMLP FFNs).

The full PI0 (4B parameters) cannot be built on this CPU; a tiny PiGemma model of the same class is used.
"""

import torch
from lerobot.policies.pi_gemma import PiGemmaForCausalLM
from transformers import CONFIG_MAPPING

from lerobot_policy_adamoe.modeling_adamoe import swap_expert_mlps
from lerobot_policy_adamoe.moe import AdaMoEFeedForward, capture_routing
from lerobot_policy_adamoe.tiny_base import make_tiny_adamoe_config


def tiny_gemma_expert(use_adarms: bool) -> PiGemmaForCausalLM:
    config = CONFIG_MAPPING['gemma'](
        head_dim=16,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_hidden_layers=2,
        num_key_value_heads=1,
        vocab_size=16,
        hidden_activation='gelu_pytorch_tanh',
        dtype='float32',
        use_adarms=use_adarms,
        adarms_cond_dim=32 if use_adarms else None,
    )
    torch.manual_seed(0)
    model = PiGemmaForCausalLM(config=config)
    model.model.embed_tokens = None
    return model.eval()


def run(model, x, cond=None):
    kwargs = {'adarms_cond': cond} if cond is not None else {}
    return model.model(inputs_embeds=x, **kwargs).last_hidden_state


def test_pi0_and_pi05_expert_swap_is_function_preserving_and_keeps_up_proj(tiny_backbone):
    for use_adarms in (False, True):  # pi0, pi05 (adaRMS time conditioning)
        model = tiny_gemma_expert(use_adarms)
        x = torch.randn(2, 5, 32)
        cond = torch.randn(2, 32) if use_adarms else None
        with torch.no_grad():
            before = run(model, x, cond)
        config = make_tiny_adamoe_config(tiny_backbone, function_preserving_init=True, top_k=1)
        assert swap_expert_mlps(model.model.layers, config) == [0, 1]
        assert all(isinstance(layer.mlp, AdaMoEFeedForward) for layer in model.model.layers)
        # LeRobot's compute_layer_complete reads layer.mlp.up_proj.weight.dtype
        assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.float32
        with torch.no_grad(), capture_routing() as routing:
            after = run(model, x, cond)
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
        assert routing.of(model.model.layers[1].mlp)[-1].topk_idx.shape == (10, 1)


def test_pi0_expert_swap_runs_in_bfloat16(tiny_backbone):
    model = tiny_gemma_expert(False)
    swap_expert_mlps(model.model.layers, make_tiny_adamoe_config(tiny_backbone, top_k=2))
    model = model.to(torch.bfloat16)
    assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    with torch.no_grad():
        out = run(model, torch.randn(1, 4, 32, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
