"""Export of tiny trained policies per routing mode: ONNX Runtime vs PyTorch parity, metadata, experts, RTC."""

import inspect
import json

import numpy as np
import onnx
import pytest
import torch
from lerobot.configs import RTCAttentionSchedule
from lerobot.policies.common.vla_utils import resize_with_pad as torch_resize_with_pad
from lerobot.policies.rtc.configuration_rtc import RTCConfig

from adamoe_contract import bundle_format as fmt
from adamoe_contract.backend import PolicyBackend, RtcOptions
from adamoe_contract.preprocess import resize_with_pad
from adamoe_ros.engine import PolicyEngine
from lerobot_policy_adamoe.export.checkpoint import load_checkpoint
from lerobot_policy_adamoe.export.cli import main as export_main
from lerobot_policy_adamoe.export.metadata import IMAGE_PREFIX
from lerobot_policy_adamoe.export.reference import (
    INSTRUCTIONS,
    max_abs_difference,
    observation_to_batch,
    random_observation,
    torch_action_chunk,
)
from lerobot_policy_adamoe.export.tiny_checkpoint import train_tiny_checkpoint
from lerobot_policy_adamoe.export.untrained import UntrainedSpec

STATE_NAMES = 'shoulder_pan,shoulder_lift,elbow_flex,wrist_flex,wrist_roll,gripper,cube_x,cube_y,cube_z'
JOINT_NAMES = 'shoulder_pan,shoulder_lift,elbow_flex,wrist_flex,wrist_roll,gripper'
# Large router init so routing depends strongly on the token: every expert gets traffic in a few inputs.
# moe_execution="sparse" makes the PyTorch side run the same expert loop the sparse export traces.
MODES = {
    'adamoe': UntrainedSpec(
        routing_mode='adamoe', config_overrides={'gating_init_std': 1.0, 'moe_execution': 'sparse'}
    ),
    'vanilla': UntrainedSpec(routing_mode='vanilla', config_overrides={'gating_init_std': 1.0}),
    'dense': UntrainedSpec(routing_mode='dense'),
    'adamoe-dense-graph': UntrainedSpec(routing_mode='adamoe', config_overrides={'gating_init_std': 1.0}),
}


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope='module', params=list(MODES))
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f'export_{request.param}')
    checkpoint = train_tiny_checkpoint(root / 'ckpt', MODES[request.param], backbone_dir=root, steps=3)
    graph = 'dense' if request.param.endswith('dense-graph') else 'sparse'
    code = export_main(
        [
            str(checkpoint),
            str(root / 'bundle'),
            '--state-names',
            STATE_NAMES,
            '--joint-names',
            JOINT_NAMES,
            '--fps',
            '10',
            '--validate-cases',
            '1',
            '--expert-graph',
            graph,
        ]
    )
    assert code == 0
    ckpt = load_checkpoint(checkpoint)
    engine = PolicyEngine.from_bundle(root / 'bundle')
    return request.param.removesuffix('-dense-graph'), ckpt, engine, root / 'bundle'


def test_ort_matches_pytorch_per_mode(exported):
    _mode, ckpt, engine, _ = exported
    diff = max_abs_difference(ckpt.policy, ckpt.preprocessor, ckpt.postprocessor, engine, cases=4, seed=21)
    assert diff < 1e-4


def test_metadata_describes_the_policy(exported):
    mode, ckpt, engine, bundle = exported
    spec, config = engine.spec, ckpt.policy.config
    assert spec.state_names == tuple(STATE_NAMES.split(',')) and spec.joint_names == tuple(JOINT_NAMES.split(','))
    assert spec.dt == pytest.approx(0.1) and spec.horizon == config.chunk_size == 16
    assert spec.num_flow_steps == config.num_steps and spec.tokenizer.max_length == config.tokenizer_max_length
    np.testing.assert_allclose(spec.state_norm.mean, np.asarray(ckpt.stats['observation.state']['mean']), rtol=1e-6)
    np.testing.assert_allclose(spec.action_norm.std, np.asarray(ckpt.stats['action']['std']), rtol=1e-6)
    assert spec.routing.mode == mode
    if mode == 'dense':
        assert spec.routing.num_layers == 0 and engine.infer(
            random_observation(engine, np.random.default_rng(0), 'x')
        ).routing.token_fraction.shape == (0, 0)
    else:
        assert (spec.routing.num_experts, spec.routing.top_k) == (4, 1) and spec.routing.layer_indices == (0, 1)
    meta = json.loads((bundle / fmt.METADATA_FILE).read_text())
    assert meta['source']['lerobot_version'] == '0.6.1' and meta['source']['torch_version'] == torch.__version__
    assert meta['tokenizer']['append_newline'] is True
    for name in (fmt.PREFIX_FILE, fmt.DENOISE_FILE):
        onnx.checker.check_model(str(bundle / name), full_check=True)


def test_every_expert_is_reachable_in_the_graph(exported):
    mode, ckpt, engine, _ = exported
    if mode == 'dense':
        pytest.skip('no experts in a dense bundle')
    rng = np.random.default_rng(5)
    used = np.zeros((engine.spec.routing.num_layers, engine.spec.routing.num_experts), dtype=bool)
    for case in range(6):
        observation = random_observation(engine, rng, INSTRUCTIONS[case % len(INSTRUCTIONS)])
        result = engine.infer(observation, noise_seed=case)
        used |= result.routing.token_fraction > 0
        # Parity on the very inputs that route to each expert proves the expert's weights are in the graph.
        expected = torch_action_chunk(ckpt.policy, ckpt.preprocessor, ckpt.postprocessor, observation, result.noise)
        assert np.abs(result.actions - expected).max() < 1e-4
    assert used.all(), f'experts never selected in ORT: {np.argwhere(~used).tolist()}'


def test_tokenisation_matches_lerobot(exported):
    _mode, ckpt, engine, _ = exported
    for text in (*INSTRUCTIONS, 'pick up the cube ' * 30):
        batch = ckpt.preprocessor({**observation_to_batch(random_observation(engine, np.random.default_rng(0), text))})
        expected = batch['observation.language.tokens'][0][batch['observation.language.attention_mask'][0].bool()]
        tokens, mask = engine._tokenizer(text)
        np.testing.assert_array_equal(tokens[mask], expected.numpy())


def test_rtc_matches_lerobot_rtc(exported):
    mode, ckpt, engine, _ = exported
    if mode != 'adamoe':
        pytest.skip('RTC is routing-independent; one mode is enough')
    policy = ckpt.policy
    policy.config.rtc_config = RTCConfig(
        enabled=True,
        execution_horizon=10,
        max_guidance_weight=10.0,
        prefix_attention_schedule=RTCAttentionSchedule.LINEAR,
    )
    policy.init_rtc_processor()
    try:
        rng = np.random.default_rng(3)
        observation = random_observation(engine, rng, 'pick up the red cube')
        prefix = rng.normal(0, 0.3, (12, engine.spec.action_dim)).astype(np.float32)
        rtc_engine = PolicyEngine(
            engine.spec,
            engine._prefix,
            engine._denoise,
            engine._tokenizer,
            RtcOptions(execution_horizon=10, max_guidance_weight=10.0, schedule='LINEAR'),
        )
        result = rtc_engine.infer(observation, prefix_actions=prefix, inference_delay=3, noise_seed=4)
        mean, std = (torch.as_tensor(np.asarray(ckpt.stats['action'][k])) for k in ('mean', 'std'))
        prev = (torch.from_numpy(prefix) - mean) / (std + ckpt.eps)
        batch = ckpt.preprocessor(observation_to_batch(observation))
        policy.reset()
        actions = policy.predict_action_chunk(
            batch,
            noise=torch.from_numpy(result.noise),
            inference_delay=3,
            prev_chunk_left_over=prev[None],
            execution_horizon=10,
        )
        expected = ckpt.postprocessor(actions)[0].numpy()
        assert np.abs(result.actions - expected).max() < 1e-4
        unguided = engine.infer(observation, noise_seed=4).actions
        assert np.abs(result.actions[:3] - prefix[:3]).mean() < np.abs(unguided[:3] - prefix[:3]).mean()
    finally:
        policy.config.rtc_config = None
        policy.init_rtc_processor()
        policy.model.rtc_processor = None


@pytest.mark.parametrize(
    'src_hw, dst_hw',
    [((96, 128), (128, 128)), ((480, 640), (128, 128)), ((64, 48), (128, 128)), ((128, 128), (96, 160))],
)
def test_resize_with_pad_matches_lerobot(src_hw, dst_hw):
    image = np.random.default_rng(0).random((*src_hw, 3), dtype=np.float32)
    expected = torch_resize_with_pad(torch.from_numpy(image).permute(2, 0, 1)[None], *dst_hw, pad_value=0)
    actual = resize_with_pad(image, *dst_hw, pad_value=0.0)
    # Coefficients are computed in float64 here, in float32 by torch: up to ~7e-6 apart on [0, 1] pixels.
    np.testing.assert_allclose(actual, expected[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_image_prefix_constant_matches_lerobot():
    assert IMAGE_PREFIX == 'observation.images.'


def test_fp16_export_runs_close_to_fp32(tmp_path):
    from lerobot_policy_adamoe.export.bundle_writer import write_bundle
    from lerobot_policy_adamoe.export.metadata import DatasetNames
    from lerobot_policy_adamoe.export.untrained import make_tiny_adamoe_policy, untrained_stats

    spec = UntrainedSpec(seed=3)
    policy = make_tiny_adamoe_policy(spec, tmp_path / 'backbone')
    names = DatasetNames(STATE_NAMES.split(','), JOINT_NAMES.split(','), 10)
    write_bundle(policy, tmp_path / 'fp32', names, untrained_stats(spec), {})
    write_bundle(policy, tmp_path / 'fp16', names, untrained_stats(spec), {}, fp16=True)
    assert next(policy.parameters()).dtype == torch.float32  # the caller's policy is not converted
    fp32, fp16 = PolicyEngine.from_bundle(tmp_path / 'fp32'), PolicyEngine.from_bundle(tmp_path / 'fp16')
    assert fp16.spec.precision == 'fp16' and fp16.spec.graphs['prefix']['inputs']['state'].dtype == 'float16'
    observation = random_observation(fp32, np.random.default_rng(1), 'pick up the red cube')
    a = fp32.infer(observation, noise_seed=2).actions
    b = fp16.infer(observation, noise_seed=2).actions
    assert b.dtype == np.float32 and np.abs(a - b).max() < 2e-2


def test_torch_backend_matches_onnx_engine(exported):
    from lerobot_policy_adamoe.export.metadata import DatasetNames
    from lerobot_policy_adamoe.export.torch_backend import TorchPolicyEngine

    mode, ckpt, engine, _ = exported
    names = DatasetNames(STATE_NAMES.split(','), JOINT_NAMES.split(','), 10)
    backend = TorchPolicyEngine.from_checkpoint(ckpt.path, names)
    assert isinstance(backend, PolicyBackend) and isinstance(engine, PolicyBackend)
    for implementation in (TorchPolicyEngine, PolicyEngine):  # one signature, not two copies that may drift
        assert inspect.signature(implementation.infer) == inspect.signature(PolicyBackend.infer)
    assert backend.spec.state_names == engine.spec.state_names and backend.spec.routing == engine.spec.routing
    observation = random_observation(engine, np.random.default_rng(9), 'push the block to the left')
    ours, theirs = engine.infer(observation, noise_seed=5), backend.infer(observation, noise_seed=5)
    assert np.abs(ours.actions - theirs.actions).max() < 1e-4
    np.testing.assert_allclose(ours.routing.token_fraction, theirs.routing.token_fraction)
    prefix = ours.actions[:6] + 0.1
    guided = engine.infer(observation, prefix_actions=prefix, inference_delay=2, noise_seed=5).actions
    torch_guided = backend.infer(observation, prefix_actions=prefix, inference_delay=2, noise_seed=5).actions
    assert np.abs(guided - torch_guided).max() < 1e-4
    assert np.abs(backend.infer(observation, noise_seed=5).actions - theirs.actions).max() == 0  # RTC reset


def test_dataset_names_come_from_the_training_dataset(tmp_path):
    from lerobot_policy_adamoe.export.checkpoint import dataset_names_from_root, dataset_root_from_checkpoint
    from lerobot_policy_adamoe.testing import JOINTS, make_synthetic_dataset

    root = tmp_path / 'dataset'
    make_synthetic_dataset(root, num_episodes=1, frames_per_episode=3, image_hw=(32, 32), fps=15)
    names = dataset_names_from_root(root)
    assert names.state_names == list(JOINTS) and names.joint_names == list(JOINTS) and names.fps == 15
    checkpoint = tmp_path / 'ckpt'
    checkpoint.mkdir()
    assert dataset_root_from_checkpoint(checkpoint) is None
    (checkpoint / 'train_config.json').write_text(json.dumps({'dataset': {'repo_id': 'x/y', 'root': str(root)}}))
    assert dataset_root_from_checkpoint(checkpoint) == root
