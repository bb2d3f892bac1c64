"""PI0 / PI05 AdaMoE bundles (tiny size): `adamoe-export` of a checkpoint, then the torch-free engine against
LeRobot's own processors and `predict_action_chunk` with the same noise (chunk, routing, RTC), and PI05's prompt
(normalised state discretised into 256 bins) against LeRobot's `Pi05PrepareStateTokenizerProcessorStep`."""

import json

import numpy as np
import pytest
import torch
from lerobot.lerobot_types import TransitionKey
from lerobot.policies.common.vla_utils import resize_with_pad_torch
from lerobot.policies.factory import make_policy, make_pre_post_processors
from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
from lerobot.processor.converters import create_transition

from adamoe_contract import bundle_format as fmt
from adamoe_contract.backend import Observation
from adamoe_contract.preprocess import resize_with_pad_centered, state_prompt
from adamoe_ros.engine import PolicyEngine
from lerobot_policy_adamoe.export.bundle_writer import write_bundle
from lerobot_policy_adamoe.export.checkpoint import load_checkpoint
from lerobot_policy_adamoe.export.cli import main as export_main
from lerobot_policy_adamoe.export.metadata import DatasetNames
from lerobot_policy_adamoe.export.reference import (
    INSTRUCTIONS,
    max_abs_difference,
    observation_to_batch,
    random_observation,
)
from lerobot_policy_adamoe.export.torch_backend import TorchPolicyEngine
from lerobot_policy_adamoe.tiny_pi import TINY_IMAGE_SIZE, make_tiny_dense_pi_config, make_tiny_pi_config, tiny_pi_sizes

# PI05's prompt holds the task and one number per state value: long enough that the tiny tokenizer keeps it whole.
PROMPT_TOKENS = {'pi0': 32, 'pi05': 96}


@pytest.fixture(scope='module', params=['pi0', 'pi05'])
def exported(request, tiny_backbone, synthetic_dataset, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(f'{kind}_bundle')
    torch.manual_seed(0)
    # Spread-out routing, so the action tokens of a few observations reach every expert.
    config = make_tiny_pi_config(
        kind, tiny_backbone, top_k=2, gating_init_std=0.5, tokenizer_max_length=PROMPT_TOKENS[kind]
    )
    policy = make_policy(config, ds_meta=synthetic_dataset.meta).eval()
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=synthetic_dataset.meta.stats)
    for part in (policy, preprocessor, postprocessor):
        part.save_pretrained(root / 'ckpt')
    args = [str(root / 'ckpt'), str(root / 'bundle'), '--dataset-root', str(synthetic_dataset.root)]
    assert export_main([*args, '--validate-cases', '2']) == 0  # the export's own PyTorch vs ORT check, < 1e-4
    return kind, load_checkpoint(root / 'ckpt'), PolicyEngine.from_bundle(root / 'bundle'), root / 'bundle'


def test_bundle_says_what_the_pi_policy_is(exported):
    kind, ckpt, engine, bundle = exported
    spec, config = engine.spec, ckpt.policy.config
    meta = json.loads((bundle / fmt.METADATA_FILE).read_text())
    assert meta['format_version'] == fmt.FORMAT_VERSION and meta['source']['policy_type'] == f'adamoe_{kind}'
    assert spec.model_family == kind
    # PI0's state is a suffix token of the denoise step; PI05's is in the prompt, so no graph takes it.
    assert (fmt.STATE in spec.graphs['denoise']['inputs']) == (kind == 'pi0')
    assert fmt.STATE not in spec.graphs['prefix']['inputs']
    assert spec.tokenizer.state_bins == (256 if kind == 'pi05' else None)
    assert spec.tokenizer.append_newline == (kind == 'pi0')  # Pi0NewLineProcessor
    assert spec.tokenizer.max_length == config.tokenizer_max_length
    preprocessing = spec.image_preprocessing
    assert (preprocessing.model_height, preprocessing.model_width, preprocessing.padding) == (
        TINY_IMAGE_SIZE,
        TINY_IMAGE_SIZE,
        'center',
    )
    assert spec.image_size[spec.camera_names[0]] == (96, 128)  # the dataset's cameras, resized by the engine
    assert spec.num_flow_steps == config.num_inference_steps and spec.horizon == config.chunk_size
    assert spec.state_norm.mode == {'pi0': 'MEAN_STD', 'pi05': 'QUANTILES'}[kind]  # LeRobot's defaults
    assert (spec.routing.mode, spec.routing.num_layers, spec.routing.top_k) == ('adamoe', 2, 2)


def test_engine_matches_lerobot_predict_action_chunk_and_routing(exported):
    kind, ckpt, engine, _ = exported
    spec = engine.spec
    names = DatasetNames(list(spec.state_names), list(spec.joint_names), spec.fps)
    # LeRobot's preprocessor, predict_action_chunk(noise=...) and postprocessor, with the routing it captures.
    lerobot = TorchPolicyEngine.from_checkpoint(ckpt.path, names)
    assert lerobot.spec.model_family == kind and lerobot.spec.routing == spec.routing
    rng = np.random.default_rng(7)
    used = np.zeros((spec.routing.num_layers, spec.routing.num_experts), dtype=bool)
    for case, instruction in enumerate(INSTRUCTIONS):
        observation = random_observation(engine, rng, instruction)
        ours, theirs = engine.infer(observation, noise_seed=case), lerobot.infer(observation, noise_seed=case)
        np.testing.assert_array_equal(ours.noise, theirs.noise)
        assert np.abs(ours.actions - theirs.actions).max() < 1e-4
        np.testing.assert_array_equal(ours.routing.token_expert, theirs.routing.token_expert)
        np.testing.assert_allclose(ours.routing.token_fraction, theirs.routing.token_fraction)
        # AdaMoE weights are scale-adapter outputs (up to ~6 here): float rounding is relative.
        np.testing.assert_allclose(ours.routing.mean_weight, theirs.routing.mean_weight, rtol=1e-4, atol=1e-5)
        used |= ours.routing.token_fraction > 0
    assert used.all(), f'experts never selected: {np.argwhere(~used).tolist()}'
    # Real-time chunking: the engine's guidance equals LeRobot's RTCProcessor on PI too.
    prefix = ours.actions[:5] + 0.1
    guided = engine.infer(observation, prefix_actions=prefix, inference_delay=2, noise_seed=3).actions
    lerobot_guided = lerobot.infer(observation, prefix_actions=prefix, inference_delay=2, noise_seed=3).actions
    assert np.abs(guided - lerobot_guided).max() < 1e-4


@pytest.mark.parametrize('kind', ['pi0', 'pi05'])
def test_dense_lerobot_pi_policy_exports_too(kind, tiny_backbone, synthetic_dataset, tmp_path):
    torch.manual_seed(1)
    with tiny_pi_sizes():  # LeRobot's own PI0Policy / PI05Policy at the test-only size
        policy = make_policy(make_tiny_dense_pi_config(kind), ds_meta=synthetic_dataset.meta).eval()
    # LeRobot's PI processors load the PaliGemma tokenizer from the hub; the AdaMoE ones are the same steps offline.
    config = make_tiny_pi_config(kind, tiny_backbone)
    config.input_features, config.output_features = policy.config.input_features, policy.config.output_features
    processors = make_pre_post_processors(config, dataset_stats=synthetic_dataset.meta.stats)
    joints = synthetic_dataset.meta.features['action']['names']
    names = DatasetNames(list(joints), list(joints), synthetic_dataset.meta.fps)
    write_bundle(policy, tmp_path, names, synthetic_dataset.meta.stats, {}, preprocessor=processors[0])
    engine = PolicyEngine.from_bundle(tmp_path)
    assert (engine.spec.model_family, engine.spec.routing.mode) == (kind, 'dense')
    assert max_abs_difference(policy, *processors, engine, cases=2) < 1e-4


def test_prompt_tokens_equal_lerobot_preprocessor(exported):
    kind, ckpt, engine, _ = exported
    rng = np.random.default_rng(3)
    for case, instruction in enumerate((*INSTRUCTIONS, ' open_the\ngripper ')):
        observation = random_observation(engine, rng, instruction)
        # Far-off states too: PI05's bins then saturate at -1 and 255.
        observation.state = observation.state * (1 + 4 * (case % 2))
        feeds = engine.preprocess(observation)
        batch = ckpt.preprocessor(observation_to_batch(observation))
        np.testing.assert_array_equal(feeds[fmt.LANG_TOKENS], batch['observation.language.tokens'].numpy())
        np.testing.assert_array_equal(feeds[fmt.LANG_MASK], batch['observation.language.attention_mask'].bool().numpy())
        if kind == 'pi0':
            np.testing.assert_allclose(
                feeds[fmt.STATE][0, : engine.spec.state_dim], batch['observation.state'][0].numpy()
            )
        elif case < 2:  # short instructions: the prompt, state numbers included, fits untruncated
            assert not feeds[fmt.LANG_MASK].all()


EDGES = np.linspace(-1, 1, 257)[:-1]


@pytest.mark.parametrize('task', ['pick up the red cube', '  stack_the cube\nthen stop ', ''])
def test_pi05_state_prompt_equals_lerobot_step(task):
    # Bin edges as float32 states (and their neighbours), the ends of the range and far outside it.
    edges = EDGES[[0, 1, 127, 128, 200, 255]].astype(np.float32)
    state = np.concatenate(
        [edges, np.nextafter(edges, np.float32(2)), np.nextafter(edges, np.float32(-2)), [-1.5, 1.0, 3.0, 0.0]]
    ).astype(np.float32)
    transition = create_transition(
        observation={'observation.state': torch.from_numpy(state)[None]}, complementary_data={'task': [task]}
    )
    step = Pi05PrepareStateTokenizerProcessorStep(max_state_dim=32)
    expected = step(transition)[TransitionKey.COMPLEMENTARY_DATA]['task'][0]
    assert state_prompt(task, state, 256) == expected
    assert ' -1 ' in expected and ' 255' in expected  # both saturated ends are exercised


@pytest.mark.parametrize('src_hw, dst_hw', [((96, 128), (56, 56)), ((480, 640), (224, 224)), ((57, 43), (56, 56))])
def test_centered_resize_with_pad_matches_lerobot_pi(src_hw, dst_hw):
    image = np.random.default_rng(0).random((*src_hw, 3), dtype=np.float32)
    expected = resize_with_pad_torch(torch.from_numpy(image)[None], *dst_hw)[0].numpy()
    actual = resize_with_pad_centered(image, *dst_hw, pad_value=0.0)
    assert actual.dtype == np.float32 and actual.shape == (*dst_hw, 3)
    # The shared bilinear taps are float64 here, float32 in torch: apart by up to 4.3e-5 for 640 -> 224 (a scale
    # float32 cannot hold; 3.6e-6 with float32 taps), exactly equal for integer scales.
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_pi_bundles_refuse_what_they_cannot_hold(exported, tmp_path):
    kind, ckpt, engine, _ = exported
    spec = engine.spec
    names = DatasetNames(list(spec.state_names), list(spec.joint_names), spec.fps)
    with pytest.raises(ValueError, match=f'fp16 {kind} bundles are not implemented'):
        write_bundle(ckpt.policy, tmp_path, names, ckpt.stats, {}, fp16=True, preprocessor=ckpt.preprocessor)
    with pytest.raises(ValueError, match='takes its tokenizer and prompt from the policy preprocessor'):
        write_bundle(ckpt.policy, tmp_path, names, ckpt.stats, {})
    assert not any(tmp_path.iterdir())  # refused before writing anything
    wrong = random_observation(engine, np.random.default_rng(0), 'x')
    with pytest.raises(ValueError, match='state: expected 6 values'):
        engine.infer(Observation(wrong.images, wrong.state[:3], 'x'))
