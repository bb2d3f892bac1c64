"""The real-size SmolVLA and π0 specs have their bases' shapes (built on the meta device: no memory, no init)."""

import pytest
import torch

from lerobot_policy_adamoe.export.pi_graphs import PiDenoiseStepGraph, PiPrefixGraph, example_pi_prefix_inputs
from lerobot_policy_adamoe.export.untrained import make_tiny_adamoe_policy
from lerobot_policy_adamoe.modeling_adamoe_pi import AdaMoEPI0Policy
from lerobot_policy_adamoe.moe import AdaMoEFeedForward
from lerobot_policy_adamoe.real_size import PI0_VLM_VARIANTS, make_pi0_policy, pi0_config, pi0_interface, smolvla_spec
from lerobot_policy_adamoe.tiny_base import make_tiny_backbone


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp('real_size')
    with torch.device('meta'):
        return {mode: make_tiny_adamoe_policy(smolvla_spec(mode), root / 'backbone') for mode in ('dense', 'adamoe')}


def test_smolvla_real_size_shapes(models):
    policy = models['dense']
    vlm = policy.model.vlm_with_expert
    text, vision = vlm.get_vlm_model().text_model, vlm.get_vlm_model().vision_model
    assert len(text.layers) == 16 and text.config.hidden_size == 960 and text.config.intermediate_size == 2560
    assert (text.config.num_attention_heads, text.config.num_key_value_heads) == (15, 5)
    assert text.embed_tokens.num_embeddings == 49280
    assert len(vision.encoder.layers) == 12 and vision.config.hidden_size == 768 and vision.config.image_size == 512
    expert = vlm.lm_expert
    assert len(expert.layers) == 16 and expert.config.hidden_size == 720 and expert.config.intermediate_size == 2048
    assert policy.config.resize_imgs_with_padding == (512, 512) and policy.config.chunk_size == 50
    assert 440e6 < _count(policy) < 460e6  # "about 450 M"


def test_smolvla_adamoe_adds_four_routed_experts_per_expert_layer(models):
    ffn = 3 * 720 * 2048
    extra = _count(models['adamoe']) - _count(models['dense'])
    assert 16 * 4 * ffn <= extra < 16 * 4 * ffn * 1.01  # plus routers and scale adapters


def test_embedding_rows_cannot_be_fewer_than_the_tokenizer(tmp_path):
    with pytest.raises(ValueError, match='smaller than the tokenizer'):
        make_tiny_backbone(tmp_path, embedding_rows=8)


def test_pi0_real_size_is_paligemma_3b_with_moe_in_the_gemma_300m_expert():
    counts = {}
    for mode in ('dense', 'adamoe'):
        config = pi0_config(mode)
        config.device = 'meta'  # LeRobot's config only accepts real devices; PI0Policy moves the model to this one
        with torch.device('meta'):
            policy = AdaMoEPI0Policy(config)
        counts[mode] = _count(policy)
    pali = policy.model.paligemma_with_expert.paligemma.config.text_config
    expert = policy.model.paligemma_with_expert.gemma_expert.model
    assert (pali.num_hidden_layers, pali.hidden_size, pali.intermediate_size) == (18, 2048, 16384)
    assert (len(expert.layers), expert.config.hidden_size, expert.config.intermediate_size) == (18, 1024, 4096)
    assert all(isinstance(layer.mlp, AdaMoEFeedForward) for layer in expert.layers)
    assert policy.config.chunk_size == 50 and policy.config.num_inference_steps == 10
    assert policy.config.image_resolution == (224, 224)
    assert 3.9e9 < counts['dense'] < 4.1e9  # the module docstring's 4.0 B
    ffn = 3 * 1024 * 4096
    assert 18 * 4 * ffn <= counts['adamoe'] - counts['dense'] < 18 * 4 * ffn * 1.01


@pytest.fixture(scope='module')
def pi0_300m():
    policies = {}
    for mode in ('dense', 'adamoe'):
        config = pi0_config(mode, paligemma_variant=PI0_VLM_VARIANTS['pi0_300m'], noise_std=0.0)
        config.device = 'meta'
        with torch.device('meta'):
            policies[mode] = make_pi0_policy(config, pi0_interface(config.image_resolution))
    return policies


def test_pi0_300m_is_pi0_with_paligemma_at_the_gemma_300m_shape(pi0_300m):
    policy = pi0_300m['adamoe']
    pair = policy.model.paligemma_with_expert
    text, vision = pair.paligemma.config.text_config, pair.paligemma.config.vision_config
    assert (text.num_hidden_layers, text.hidden_size, text.intermediate_size) == (18, 1024, 4096)
    assert (vision.num_hidden_layers, vision.hidden_size, vision.intermediate_size) == (27, 1152, 4304)  # So400m
    assert (vision.patch_size, vision.image_size) == (14, 224)
    projector = pair.paligemma.model.multi_modal_projector.linear
    assert (projector.in_features, projector.out_features) == (1152, 1024)  # to the text width, as openpi
    expert = pair.gemma_expert.model
    assert (len(expert.layers), expert.config.hidden_size, expert.config.intermediate_size) == (18, 1024, 4096)
    assert all(isinstance(layer.mlp, AdaMoEFeedForward) for layer in expert.layers)
    assert pair.paligemma.lm_head is None and pair.gemma_expert.lm_head is None  # never run, not built into bundles
    config = policy.config
    assert config.tokenizer_max_length == 48 and config.chunk_size == 50 and config.num_inference_steps == 10
    cameras = [key for key in config.input_features if key.startswith('observation.images.')]
    assert len(cameras) == 3 and config.input_features[cameras[0]].shape == (3, 224, 224)
    assert config.robot_state_feature.shape == (14,) and config.action_feature.shape == (14,)
    dense, adamoe = _count(pi0_300m['dense']), _count(policy)
    assert 1.29e9 < dense < 1.31e9  # real_size.py's "1.30 B without the LM heads"
    ffn = 3 * 1024 * 4096
    assert 18 * 4 * ffn <= adamoe - dense < 18 * 4 * ffn * 1.01


def test_pi0_300m_graphs_take_three_cameras_and_pi0s_prompt(pi0_300m):
    # Shapes only (meta tensors): the bundle's prefix sees 3 x 256 image tokens + 48 prompt tokens.
    policy = pi0_300m['adamoe']
    with torch.device('meta'), torch.no_grad():
        inputs = example_pi_prefix_inputs(policy)
        mask, *cache = PiPrefixGraph(policy.model, 3)(*inputs.values())
        assert mask.shape == (1, 3 * 256 + 48) and len(cache) == 2 * 18
        assert cache[0].shape == (1, 1, 816, 256)  # one KV head of width 256 per layer
        x_t, state = torch.zeros(1, 50, 32), torch.zeros(1, 32)
        velocity, *routing = PiDenoiseStepGraph(policy.model, 18)(x_t, torch.zeros(1), state, mask, *cache)
    assert velocity.shape == (1, 50, 32) and [r.shape for r in routing] == [(1, 18, 50, 1)] * 2
