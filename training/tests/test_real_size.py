"""The real-size SmolVLA and π0 specs have their bases' shapes (built on the meta device: no memory, no init)."""

import pytest
import torch

from lerobot_policy_adamoe.export.untrained import make_tiny_adamoe_policy
from lerobot_policy_adamoe.modeling_adamoe_pi import AdaMoEPI0Policy
from lerobot_policy_adamoe.moe import AdaMoEFeedForward
from lerobot_policy_adamoe.real_size import pi0_config, smolvla_spec
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
