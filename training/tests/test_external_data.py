"""Bundles with ONNX external data, forced at tiny size by a zero threshold: placement, hash, validation, loading."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from adamoe_contract import bundle_format as fmt
from adamoe_ros.engine import BundleError, PolicyEngine
from lerobot_policy_adamoe.export.bundle_writer import write_bundle
from lerobot_policy_adamoe.export.external_data import place_graphs, scratch_file
from lerobot_policy_adamoe.export.metadata import DatasetNames
from lerobot_policy_adamoe.export.reference import random_observation
from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_tiny_adamoe_policy, untrained_stats

GRAPH_DATA = {name: fmt.external_data_file(name) for name in fmt.GRAPH_FILES}


def _matmul_graph(file, seed):
    weight = np.random.default_rng(seed).normal(size=(64, 64)).astype(np.float32)  # 16 KB: goes external
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['x', 'w'], ['y'])],
        'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(weight, 'w')],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), str(file))
    return weight


def _scratch(tmp_path):
    scratch = tmp_path / 'scratch'
    weights = {name: _matmul_graph(scratch_file(scratch, name), seed) for seed, name in enumerate(fmt.GRAPH_FILES)}
    return scratch, weights


def test_small_graphs_are_moved_byte_for_byte(tmp_path):
    scratch, _ = _scratch(tmp_path)
    exported = {name: scratch_file(scratch, name).read_bytes() for name in fmt.GRAPH_FILES}
    out = tmp_path / 'bundle'
    out.mkdir()
    (out / GRAPH_DATA[fmt.DENOISE_FILE]).write_bytes(b'stale')  # left by an earlier large export here
    assert place_graphs(scratch, out) == {}
    for name in fmt.GRAPH_FILES:
        assert (out / name).read_bytes() == exported[name]
    assert sorted(p.name for p in out.iterdir()) == sorted(fmt.GRAPH_FILES)


def test_large_graphs_keep_their_weights_in_one_data_file_each(tmp_path):
    import onnxruntime as ort

    scratch, weights = _scratch(tmp_path)
    out = tmp_path / 'bundle'
    out.mkdir()
    assert place_graphs(scratch, out, threshold=0) == GRAPH_DATA
    x = np.ones((1, 64), np.float32)
    for name, data_file in GRAPH_DATA.items():
        assert (out / data_file).stat().st_size == weights[name].nbytes
        assert (out / name).stat().st_size < 1024  # the graph file holds only the structure
        session = ort.InferenceSession(str(out / name), providers=['CPUExecutionProvider'])
        # numpy sums in another order than ONNX Runtime: equal to float32 rounding, not bit for bit
        np.testing.assert_allclose(session.run(None, {'x': x})[0], x @ weights[name], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope='module')
def bundles(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('external')
    spec = UntrainedSpec(seed=4)
    policy = make_tiny_adamoe_policy(spec, root / 'backbone')
    names = DatasetNames([*spec.joint_names, *spec.extra_state_names], list(spec.joint_names), spec.fps)
    write_bundle(policy, root / 'inline', names, untrained_stats(spec), {})
    write_bundle(policy, root / 'external', names, untrained_stats(spec), {}, external_data_threshold=0)
    return root


@pytest.fixture
def external_copy(bundles, tmp_path):
    return shutil.copytree(bundles / 'external', tmp_path / 'bundle')


def test_external_data_bundle_runs_exactly_like_the_inline_one(bundles):
    inline, external = PolicyEngine.from_bundle(bundles / 'inline'), PolicyEngine.from_bundle(bundles / 'external')
    assert external.spec.external_data == GRAPH_DATA and inline.spec.external_data == {}
    assert fmt.EXTERNAL_DATA not in json.loads((bundles / 'inline' / fmt.METADATA_FILE).read_text())
    assert external.spec.bundle_id == fmt.content_hash(bundles / 'external', fmt.content_files(GRAPH_DATA.values()))
    assert inline.spec.bundle_id == fmt.content_hash(bundles / 'inline')
    assert not list((bundles / 'external').glob('.export_*'))  # the scratch folder is gone
    observation = random_observation(inline, np.random.default_rng(3), 'pick up the red cube')
    a, b = inline.infer(observation, noise_seed=1), external.infer(observation, noise_seed=1)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.routing.token_fraction, b.routing.token_fraction)


def test_missing_external_data_file_is_named(external_copy):
    (external_copy / GRAPH_DATA[fmt.DENOISE_FILE]).unlink()
    with pytest.raises(BundleError, match=r'denoise\.onnx\.data: missing from the bundle'):
        PolicyEngine.from_bundle(external_copy, warmup=False)


def test_corrupted_external_data_fails_the_content_hash(external_copy):
    data_file = external_copy / GRAPH_DATA[fmt.PREFIX_FILE]
    data = bytearray(data_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data_file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"does not match the files' content hash .* prefix\.onnx\.data"):
        PolicyEngine.from_bundle(external_copy, warmup=False)


def test_truncated_external_data_is_refused_by_the_loader_even_without_the_hash(external_copy):
    data_file = external_copy / GRAPH_DATA[fmt.DENOISE_FILE]
    data_file.write_bytes(data_file.read_bytes()[:100])
    with pytest.raises(BundleError, match=r'denoise\.onnx: ONNX Runtime cannot load it'):
        PolicyEngine.from_bundle(external_copy, warmup=False, verify_hash=False)


def _edit(folder, edit):
    file = folder / fmt.METADATA_FILE
    data = json.loads(file.read_text())
    edit(data)
    file.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ('entries', 'message'),
    [
        ({fmt.DENOISE_FILE: '../weights.data'}, r"external_data\.denoise\.onnx' must be 'denoise\.onnx\.data'"),
        ({fmt.TOKENIZER_FILE: 'tokenizer.json.data'}, r"external_data\.tokenizer\.json' names no graph"),
        ([], r"'external_data' must be dict"),
    ],
)
def test_bad_external_data_declaration_is_named(external_copy, entries, message):
    _edit(external_copy, lambda d: d.__setitem__(fmt.EXTERNAL_DATA, entries))
    with pytest.raises(BundleError, match=message):
        PolicyEngine.from_bundle(external_copy, warmup=False)


def test_dropping_the_declaration_does_not_take_the_data_out_of_the_hash(external_copy):
    _edit(external_copy, lambda d: d.pop(fmt.EXTERNAL_DATA))
    with pytest.raises(BundleError, match="does not match the files' content hash"):
        PolicyEngine.from_bundle(external_copy, warmup=False)
