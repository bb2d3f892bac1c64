"""Runtime engine on the committed demo bundle: loading, validation errors, inference contract, RTC."""

import inspect
import json
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from adamoe_contract import bundle_format as fmt
from adamoe_ros.bundles import PICK_PLACE
from adamoe_ros.engine import BundleError, Observation, PolicyBackend, PolicyEngine, ProviderError, RtcOptions
from adamoe_ros.engine.binding import provider_device, run_on_device
from adamoe_ros.engine.flow import rtc_guidance_weight, rtc_prefix_weights
from adamoe_ros.engine.providers import CUDA_PROVIDERS, create_session

DEMO = PICK_PLACE


@pytest.fixture(scope='module')
def engine():
    return PolicyEngine.from_bundle(DEMO)


@pytest.fixture
def bundle_copy(tmp_path):
    target = tmp_path / 'bundle'
    shutil.copytree(DEMO, target)
    return target


def _observation(engine, seed=0, instruction='pick up the red cube', hw=None):
    rng = np.random.default_rng(seed)
    images = {
        cam: rng.integers(0, 256, (*(hw or engine.spec.image_size[cam]), 3), dtype=np.uint8)
        for cam in engine.spec.camera_names
    }
    return Observation(
        images=images, state=rng.normal(0, 0.3, engine.spec.state_dim).astype(np.float32), instruction=instruction
    )


def _edit_metadata(folder, edit):
    file = folder / fmt.METADATA_FILE
    data = json.loads(file.read_text())
    edit(data)
    file.write_text(json.dumps(data))


def _rehash(folder):
    _edit_metadata(folder, lambda d: d.__setitem__('bundle_id', fmt.content_hash(folder)))


def test_engine_never_imports_torch():
    import subprocess

    code = "import sys, adamoe_ros.engine; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == 'False'


def test_engine_implements_the_backend_protocol(engine):
    assert isinstance(engine, PolicyBackend)
    assert inspect.signature(PolicyEngine.infer) == inspect.signature(PolicyBackend.infer)


def test_demo_spec_matches_the_demo_contract(engine):
    spec = engine.spec
    assert spec.camera_names == ('front', 'wrist')
    assert spec.image_size == {'front': (128, 128), 'wrist': (128, 128)}
    assert spec.joint_names == ('shoulder_pan', 'shoulder_lift', 'elbow_flex', 'wrist_flex', 'wrist_roll', 'gripper')
    assert spec.state_names == (*spec.joint_names, 'cube_x', 'cube_y', 'cube_z')
    assert (spec.state_dim, spec.action_dim, spec.horizon, spec.num_flow_steps) == (9, 6, 16, 10)
    assert spec.dt == pytest.approx(0.1)
    assert (spec.routing.mode, spec.routing.num_experts, spec.routing.top_k) == ('adamoe', 4, 1)
    assert spec.bundle_id == fmt.content_hash(DEMO)
    assert engine.providers[0] == 'CPUExecutionProvider'


def test_infer_returns_chunk_timings_and_routing(engine):
    result = engine.infer(_observation(engine), noise_seed=1)
    assert result.actions.shape == (16, 6) and result.actions.dtype == np.float32
    assert np.all(np.isfinite(result.actions))
    assert set(result.timings) == {'preprocess', 'prefix', 'denoise', 'total'}
    assert result.timings['total'] >= result.timings['prefix'] + result.timings['denoise']
    routing = result.routing
    assert routing.token_fraction.shape == routing.mean_weight.shape == (2, 4)
    np.testing.assert_allclose(routing.token_fraction.sum(axis=1), 1.0, atol=1e-6)  # top-1: one expert per token
    assert routing.layer_indices == (0, 1) and routing.top_k == 1


def test_fixed_seed_is_reproducible_and_seeds_differ(engine):
    obs = _observation(engine)
    a = engine.infer(obs, noise_seed=7).actions
    b = engine.infer(obs, noise_seed=7).actions
    c = engine.infer(obs, noise_seed=8).actions
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_observation_content_changes_the_chunk(engine):
    base = engine.infer(_observation(engine, seed=0), noise_seed=3).actions
    other_text = engine.infer(_observation(engine, seed=0, instruction='open the gripper'), noise_seed=3).actions
    other_images = engine.infer(_observation(engine, seed=5), noise_seed=3).actions
    assert np.abs(base - other_text).max() > 1e-5
    assert np.abs(base - other_images).max() > 1e-5


def test_other_image_sizes_are_resized(engine):
    result = engine.infer(_observation(engine, hw=(240, 320)), noise_seed=0)
    assert result.actions.shape == (16, 6) and np.all(np.isfinite(result.actions))


@pytest.mark.parametrize(
    'mutate, message',
    [
        (lambda o: o.images.pop('wrist'), 'lacks camera images'),
        (lambda o: o.images.__setitem__('front', o.images['front'].astype(np.float32)), "camera 'front'"),
        (lambda o: o.images.__setitem__('front', o.images['front'][..., :1]), "camera 'front'"),
        (lambda o: setattr(o, 'state', np.zeros(6, np.float32)), 'state: expected 9'),
        (lambda o: o.state.__setitem__(2, np.nan), 'NaN'),
        (lambda o: setattr(o, 'instruction', None), 'instruction'),
    ],
)
def test_bad_observation_is_rejected_and_engine_keeps_working(engine, mutate, message):
    obs = _observation(engine)
    mutate(obs)
    with pytest.raises(ValueError, match=message):
        engine.infer(obs)
    assert engine.infer(_observation(engine), noise_seed=0).actions.shape == (16, 6)


def test_long_instruction_is_truncated_not_rejected(engine):
    result = engine.infer(_observation(engine, instruction='pick up the cube ' * 40), noise_seed=0)
    assert np.all(np.isfinite(result.actions))


def test_rtc_guidance_pulls_first_actions_toward_prefix(engine):
    obs = _observation(engine)
    free = engine.infer(obs, noise_seed=11).actions
    prefix = engine.infer(obs, noise_seed=12).actions[:8] + 0.3  # a different, shifted leftover chunk
    delay = 4
    guided = engine.infer(obs, prefix_actions=prefix, inference_delay=delay, noise_seed=11).actions
    free_error = np.abs(free[:delay] - prefix[:delay]).mean()
    guided_error = np.abs(guided[:delay] - prefix[:delay]).mean()
    assert guided_error < 0.25 * free_error
    # Without a prefix the same seed gives the free chunk: guidance is the only difference.
    np.testing.assert_array_equal(engine.infer(obs, noise_seed=11).actions, free)


def test_rtc_rejects_bad_prefix(engine):
    obs = _observation(engine)
    with pytest.raises(ValueError, match='prefix_actions'):
        engine.infer(obs, prefix_actions=np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match='NaN'):
        engine.infer(obs, prefix_actions=np.full((4, 6), np.nan, np.float32))
    with pytest.raises(ValueError, match='inference_delay'):
        engine.infer(obs, prefix_actions=np.zeros((4, 6), np.float32), inference_delay=17)


def test_rtc_prefix_weights_schedules():
    linear = rtc_prefix_weights(inference_delay=2, execution_horizon=6, horizon=10, schedule='LINEAR')
    np.testing.assert_allclose(linear, [1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0], atol=1e-6)
    zeros = rtc_prefix_weights(2, 6, 10, 'ZEROS')
    np.testing.assert_array_equal(zeros, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    exp = rtc_prefix_weights(2, 6, 10, 'EXP')
    assert exp[0] == 1 and np.all(np.diff(exp[1:6]) < 0) and np.all(exp[2:6] < linear[2:6])
    assert rtc_guidance_weight(1.0, 10.0) == 10.0
    assert 0 < rtc_guidance_weight(0.5, 100.0) < 100.0


def test_explicit_cpu_provider_and_unavailable_provider(bundle_copy):
    engine = PolicyEngine.from_bundle(bundle_copy, providers=['CPUExecutionProvider'], warmup=False)
    assert engine.providers == ['CPUExecutionProvider']
    with pytest.raises(ProviderError, match='NoSuchExecutionProvider'):
        PolicyEngine.from_bundle(bundle_copy, providers=['NoSuchExecutionProvider'], warmup=False)
    with pytest.raises(ValueError, match='schedule'):
        PolicyEngine.from_bundle(bundle_copy, rtc=RtcOptions(schedule='CUBIC'), warmup=False)


@pytest.mark.parametrize('provider', CUDA_PROVIDERS)
def test_a_missing_gpu_provider_is_named_not_replaced_by_the_cpu(bundle_copy, provider):
    if provider in ort.get_available_providers():
        pytest.skip(f'{provider} is available here')
    with pytest.raises(ProviderError, match=rf"\['{provider}'\] are not available.*onnxruntime-gpu"):
        PolicyEngine.from_bundle(bundle_copy, providers=[provider, 'CPUExecutionProvider'], warmup=False)


def test_the_binding_device_is_the_first_providers():
    assert provider_device('CUDAExecutionProvider', {'device_id': '1'}) == ('cuda', 1)
    assert provider_device('TensorrtExecutionProvider', {}) == ('cuda', 0)
    assert provider_device('CPUExecutionProvider', {}) == ('cpu', 0)


def test_prefix_outputs_stay_on_the_session_device(engine):
    session = create_session(DEMO / fmt.PREFIX_FILE, ['CPUExecutionProvider'], 1)
    cache = run_on_device(session, engine.preprocess(_observation(engine)))
    assert list(cache) == [o.name for o in session.get_outputs()]
    assert all(isinstance(v, ort.OrtValue) and v.device_name() == 'cpu' for v in cache.values())


# --- bad bundles: each gives one BundleError naming the file and the problem --------------------------


def _load(folder):
    return PolicyEngine.from_bundle(folder, warmup=False)


def test_missing_folder_and_metadata(tmp_path, bundle_copy):
    with pytest.raises(BundleError, match='does not exist'):
        _load(tmp_path / 'nowhere')
    (bundle_copy / fmt.METADATA_FILE).unlink()
    with pytest.raises(BundleError, match='bundle.json: missing'):
        _load(bundle_copy)


@pytest.mark.parametrize('name', [fmt.PREFIX_FILE, fmt.DENOISE_FILE, fmt.TOKENIZER_FILE])
def test_missing_content_file(bundle_copy, name):
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError, match=f'{name}: missing'):
        _load(bundle_copy)


def test_invalid_json(bundle_copy):
    (bundle_copy / fmt.METADATA_FILE).write_text('{not json')
    with pytest.raises(BundleError, match='not valid JSON'):
        _load(bundle_copy)


def test_version_mismatch(bundle_copy):
    unknown = fmt.FORMAT_VERSION + 1
    _edit_metadata(bundle_copy, lambda d: d.__setitem__('format_version', unknown))
    with pytest.raises(BundleError, match=f'format_version {unknown} is not supported'):
        _load(bundle_copy)


def _as_version_2(data, family):
    data.update(format_version=2, model_family=family)
    data['image_preprocessing']['padding'] = 'left_top'


def test_version_2_names_its_model_family(bundle_copy):
    _edit_metadata(bundle_copy, lambda d: _as_version_2(d, 'smolvla'))
    assert _load(bundle_copy).spec.model_family == 'smolvla'  # the demo (version 1) read as what it is
    _edit_metadata(bundle_copy, lambda d: _as_version_2(d, 'gr00t'))
    with pytest.raises(
        BundleError, match=r"field 'model_family' must be one of \('smolvla', 'pi0', 'pi05'\), got 'gr00t'"
    ):
        _load(bundle_copy)
    _edit_metadata(bundle_copy, lambda d: d.pop('model_family'))
    with pytest.raises(BundleError, match="field 'model_family' is missing"):
        _load(bundle_copy)


def test_state_goes_where_the_family_takes_it(bundle_copy):
    _edit_metadata(bundle_copy, lambda d: _as_version_2(d, 'pi0'))  # PI0 takes it in the denoise graph
    with pytest.raises(BundleError, match="prefix.onnx: input 'state' does not belong in this graph"):
        _load(bundle_copy)
    _edit_metadata(bundle_copy, lambda d: d.__setitem__('model_family', 'pi05'))
    with pytest.raises(BundleError, match="'tokenizer.state_bins' is required in a pi05 bundle"):
        _load(bundle_copy)
    _edit_metadata(
        bundle_copy, lambda d: d.update(model_family='smolvla', tokenizer={**d['tokenizer'], 'state_bins': 256})
    )
    with pytest.raises(BundleError, match="'tokenizer.state_bins' is required in a pi05 bundle and only there"):
        _load(bundle_copy)
    _edit_metadata(bundle_copy, lambda d: d['image_preprocessing'].__setitem__('padding', 'right'))
    with pytest.raises(BundleError, match=r"'image_preprocessing.padding' must be one of \('left_top', 'center'\)"):
        _load(bundle_copy)


def test_missing_field_is_named(bundle_copy):
    _edit_metadata(bundle_copy, lambda d: d['normalization']['action'].pop('std'))
    with pytest.raises(BundleError, match=r"normalization\.action\.std' is missing"):
        _load(bundle_copy)


def test_hash_mismatch(bundle_copy):
    tokenizer = bundle_copy / fmt.TOKENIZER_FILE
    tokenizer.write_text(tokenizer.read_text().replace('<pad>', '<PAD>', 1))
    with pytest.raises(BundleError, match="does not match the files' content hash"):
        _load(bundle_copy)


def test_corrupted_onnx(bundle_copy):
    data = (bundle_copy / fmt.DENOISE_FILE).read_bytes()
    (bundle_copy / fmt.DENOISE_FILE).write_bytes(data[: len(data) // 3])
    _rehash(bundle_copy)  # a consistent hash: the loader itself must notice the broken graph
    with pytest.raises(BundleError, match='denoise.onnx: ONNX Runtime cannot load it'):
        _load(bundle_copy)


def test_shape_mismatch_between_metadata_and_graph(bundle_copy):
    _edit_metadata(bundle_copy, lambda d: d['graphs']['denoise']['inputs']['x_t'].__setitem__('shape', [1, 8, 32]))
    with pytest.raises(BundleError, match=r"denoise.onnx: input 'x_t' is float32\[1, 16, 32\] but bundle.json"):
        _load(bundle_copy)


def test_dims_mismatch_between_spec_and_graph(bundle_copy):
    def edit(d):
        d['horizon'] = 8
        d['graphs']['denoise']['inputs']['x_t']['shape'] = [1, 16, 32]

    _edit_metadata(bundle_copy, edit)
    with pytest.raises(BundleError, match=r"input 'x_t' has shape \[1, 16, 32\] but the bundle's dimensions"):
        _load(bundle_copy)


def test_dtype_mismatch(bundle_copy):
    _edit_metadata(bundle_copy, lambda d: d['graphs']['prefix']['inputs']['state'].__setitem__('dtype', 'float16'))
    with pytest.raises(BundleError, match="prefix.onnx: input 'state' is float32"):
        _load(bundle_copy)


def test_prefix_outputs_must_be_denoise_inputs(bundle_copy):
    # Rename the denoise graph's key_0 input in the graph and in bundle.json, so only the hand-off disagrees.
    model = onnx.load(str(bundle_copy / fmt.DENOISE_FILE))
    for node in model.graph.node:
        node.input[:] = ['key_zero' if name == 'key_0' else name for name in node.input]
    next(i for i in model.graph.input if i.name == 'key_0').name = 'key_zero'
    onnx.save(model, str(bundle_copy / fmt.DENOISE_FILE))
    inputs = lambda d: d['graphs']['denoise']['inputs']  # noqa: E731
    _edit_metadata(bundle_copy, lambda d: inputs(d).__setitem__('key_zero', inputs(d).pop('key_0')))
    _rehash(bundle_copy)
    with pytest.raises(BundleError, match=r"prefix.onnx: outputs \['key_0'\] are not inputs of denoise.onnx"):
        _load(bundle_copy)


def test_state_names_must_start_with_joints(bundle_copy):
    _edit_metadata(bundle_copy, lambda d: d.__setitem__('state_names', d['state_names'][::-1]))
    with pytest.raises(BundleError, match="state_names' must start with the joint names"):
        _load(bundle_copy)
