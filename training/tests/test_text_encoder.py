"""The frozen pretrained instruction encoder (`text_encoder`): the real MiniLM, trained around, exported whole."""

import numpy as np
import pytest
import torch

from adamoe_ros.engine import PolicyEngine
from lerobot_policy_adamoe.export.checkpoint import load_checkpoint
from lerobot_policy_adamoe.export.cli import main as export_main
from lerobot_policy_adamoe.export.reference import max_abs_difference
from lerobot_policy_adamoe.export.tiny_checkpoint import train_tiny_checkpoint
from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_tiny_adamoe_policy
from lerobot_policy_adamoe.text_encoder import TextEncoder, text_encoder_folder

MINILM = 'all-MiniLM-L6-v2'
SPEC = UntrainedSpec(backbone={'text_encoder': MINILM}, config_overrides={'text_encoder': MINILM})


@pytest.fixture(scope='module')
def policy(tmp_path_factory):
    torch.manual_seed(0)
    return make_tiny_adamoe_policy(SPEC, tmp_path_factory.mktemp('minilm') / 'backbone')


def tokens_of(policy, texts):
    tokenizer = policy.model.vlm_with_expert.processor.tokenizer
    return tokenizer(texts, padding='longest', return_tensors='pt')['input_ids']


def test_the_encoder_is_the_pretrained_sentence_model():
    from sentence_transformers import SentenceTransformer

    texts = ['put the red cube on the green target', 'place the red block onto the green disc', 'open the drawer']
    sentence_model = SentenceTransformer(str(text_encoder_folder(MINILM)), device='cpu')
    reference = sentence_model.encode(texts)
    encoder = TextEncoder(MINILM, width=8).eval()
    batch = sentence_model.tokenizer(texts, padding=True, return_tensors='pt')
    with torch.no_grad():
        hidden = encoder.contextual(batch['input_ids'])
    mask = batch['attention_mask'][..., None]
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(pooled, reference, atol=1e-5)
    # Pretrained, not random: the paraphrase is nearer than an unrelated instruction.
    assert reference[0] @ reference[1] > reference[0] @ reference[2] + 0.2


def test_only_the_projection_trains_and_the_colour_word_reaches_the_prefix(policy):
    encoder = policy.model.vlm_with_expert.text_encoder
    policy.train()
    assert not encoder.bert.training  # no dropout in the frozen encoder
    tokens = tokens_of(policy, ['put the red cube on the green target', 'put the blue cube on the green target'])
    embedded = policy.model.vlm_with_expert.embed_language_tokens(tokens)
    embedded.square().sum().backward()
    assert encoder.proj.weight.grad is not None and encoder.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in encoder.bert.parameters())
    # The two instructions differ in one word; every token's embedding differs (the encoder is contextual).
    assert (embedded[0] - embedded[1]).norm(dim=-1).min() > 1e-3
    policy.eval()


def test_a_backbone_with_another_tokenizer_is_refused(tmp_path):
    plain = UntrainedSpec(config_overrides={'text_encoder': MINILM})  # the BPE backbone
    with pytest.raises(ValueError, match="backbone's tokenizer is not the encoder's"):
        make_tiny_adamoe_policy(plain, tmp_path / 'backbone')


def test_the_exported_bundle_runs_the_encoder_and_matches_pytorch(tmp_path):
    checkpoint = train_tiny_checkpoint(tmp_path / 'ckpt', SPEC, backbone_dir=tmp_path, steps=2)
    names = ['--state-names', ','.join([*SPEC.joint_names, *SPEC.extra_state_names])]
    names += ['--joint-names', ','.join(SPEC.joint_names)]
    code = export_main([str(checkpoint), str(tmp_path / 'bundle'), *names, '--fps', '10', '--validate-cases', '1'])
    assert code == 0
    ckpt = load_checkpoint(checkpoint)
    engine = PolicyEngine.from_bundle(tmp_path / 'bundle')
    # The reference instructions include the empty one and one longer than the token budget (truncated).
    assert max_abs_difference(ckpt.policy, ckpt.preprocessor, ckpt.postprocessor, engine, cases=4, seed=3) < 1e-4
