"""The frozen pretrained instruction encoder (`text_encoder`): the real MiniLM, trained around, exported."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from adamoe_ros.engine import PolicyEngine
from lerobot_policy_adamoe.export.checkpoint import load_checkpoint
from lerobot_policy_adamoe.export.cli import main as export_main
from lerobot_policy_adamoe.export.compact_encoder import (
    STORAGE,
    TEXT_ENCODER_SCOPE,
    compact_rounded_copy,
    compact_text_encoder,
    quantize_rows,
)
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


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp('minilm_ckpt')
    return train_tiny_checkpoint(folder / 'ckpt', SPEC, backbone_dir=folder, steps=2)


def export(checkpoint, bundle, *extra):
    names = ['--state-names', ','.join([*SPEC.joint_names, *SPEC.extra_state_names])]
    names += ['--joint-names', ','.join(SPEC.joint_names)]
    return export_main([str(checkpoint), str(bundle), *names, '--fps', '10', '--validate-cases', '1', *extra])


def test_the_exported_bundle_runs_the_encoder_and_matches_pytorch(checkpoint, tmp_path):
    assert export(checkpoint, tmp_path / 'bundle') == 0
    ckpt = load_checkpoint(checkpoint)
    engine = PolicyEngine.from_bundle(tmp_path / 'bundle')
    # The reference instructions include the empty one and one longer than the token budget (truncated).
    assert max_abs_difference(ckpt.policy, ckpt.preprocessor, ckpt.postprocessor, engine, cases=4, seed=3) < 1e-4


def test_compact_encoder_bundle_is_smaller_and_computes_exactly_the_rounded_policy(checkpoint, tmp_path):
    assert export(checkpoint, tmp_path / 'fp32') == 0
    assert export(checkpoint, tmp_path / 'compact', '--compact-text-encoder') == 0
    fp32_size, compact_size = ((tmp_path / b / 'prefix.onnx').stat().st_size for b in ('fp32', 'compact'))
    assert compact_size < fp32_size / 2.5  # the encoder's weights dominate the prefix graph
    restored = Counter(n.op_type for n in onnx.load(str(tmp_path / 'compact' / 'prefix.onnx')).graph.node
                       if n.name.startswith(TEXT_ENCODER_SCOPE + 'restore/'))  # fmt: skip
    assert restored == {'DequantizeLinear': 2, 'Cast': 37}  # word and position tables; 6 x 6 layer matrices + proj
    engine = PolicyEngine.from_bundle(tmp_path / 'compact')
    assert engine.spec.source['weights'] == STORAGE
    ckpt = load_checkpoint(checkpoint)
    rounded = compact_rounded_copy(ckpt.policy)
    assert max_abs_difference(rounded, ckpt.preprocessor, ckpt.postprocessor, engine, cases=4, seed=3) < 1e-4
    # The rounding changed the policy (so the bound above tells the rounded weights from the float32 ones).
    assert max_abs_difference(ckpt.policy, ckpt.preprocessor, ckpt.postprocessor, engine, cases=4, seed=3) > 1e-4


def test_compact_export_of_a_policy_without_a_text_encoder_is_refused(tmp_path):
    plain = UntrainedSpec()
    checkpoint = train_tiny_checkpoint(tmp_path / 'ckpt', plain, backbone_dir=tmp_path, steps=1)
    with pytest.raises(SystemExit, match='has no text_encoder'):
        export(checkpoint, tmp_path / 'bundle', '--compact-text-encoder')
    assert not (tmp_path / 'bundle').exists()


def test_compact_storage_with_fp16_graphs_is_refused(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        export(checkpoint, tmp_path / 'bundle', '--fp16', '--compact-text-encoder')
    assert exit_info.value.code == 2
    assert 'not allowed with argument --fp16' in capsys.readouterr().err
    assert not (tmp_path / 'bundle').exists()


def test_compact_storage_restores_the_rounded_weights_and_leaves_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    table, matrix, other = (rng.normal(size=s).astype(np.float32) for s in ((300, 64), (64, 96), (96, 80)))
    nodes = [
        helper.make_node('Gather', ['table', 'ids'], ['embedded'], name=TEXT_ENCODER_SCOPE + 'embeddings/Gather'),
        helper.make_node('MatMul', ['embedded', 'matrix'], ['hidden'], name=TEXT_ENCODER_SCOPE + 'layer/MatMul'),
        helper.make_node('MatMul', ['hidden', 'other'], ['out'], name='/model/MatMul'),  # outside the encoder
    ]
    graph = helper.make_graph(
        nodes,
        'g',
        [helper.make_tensor_value_info('ids', TensorProto.INT64, [5])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, [5, 80])],
        [numpy_helper.from_array(w, n) for w, n in ((table, 'table'), (matrix, 'matrix'), (other, 'other'))],
    )
    file = tmp_path / 'g.onnx'
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), str(file))
    before = file.stat().st_size
    assert compact_text_encoder(file) == 2
    assert file.stat().st_size < before * 0.7
    ids = np.array([0, 7, 299, 7, 42])
    (out,) = ort.InferenceSession(str(file)).run(None, {'ids': ids})
    q, scale = quantize_rows(table)
    expected = (q * scale[:, None])[ids] @ matrix.astype(np.float16).astype(np.float32) @ other
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(out - table[ids] @ matrix @ other).max() > 1e-3  # the rounding is really there


def test_the_rounded_copy_rounds_what_the_graph_stores(policy):
    rounded = compact_rounded_copy(policy)
    changed = [
        type(m).__name__
        for m, r in zip(policy.model.modules(), rounded.model.modules(), strict=True)
        if getattr(m, 'weight', None) is not None and not torch.equal(m.weight, r.weight)
    ]
    # The same weights as the exported graph restores: the word and position tables, 6 x 6 layer matrices + proj.
    assert Counter(changed) == {'Embedding': 2, 'Linear': 37}
    for module in rounded.model.vlm_with_expert.text_encoder.modules():
        if isinstance(module, torch.nn.Linear):
            assert torch.equal(module.weight, module.weight.half().float())
