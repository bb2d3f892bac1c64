"""The contract package stays light, and its numpy preprocessing equals what the runtime did with OpenCV."""

import inspect
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from adamoe_contract.backend import Observation, PolicyBackend, RtcOptions, check_observation, normalized_prefix
from adamoe_contract.preprocess import resize_with_pad
from adamoe_contract.spec import BundleError, load_spec
from adamoe_ros.bundles import PICK_PLACE

DEMO = PICK_PLACE


def test_importing_every_module_pulls_in_no_torch_ros_or_onnxruntime(tmp_path):
    code = (
        'import importlib, pkgutil, sys, adamoe_contract\n'
        "for module in pkgutil.walk_packages(adamoe_contract.__path__, 'adamoe_contract.'):\n"
        '    importlib.import_module(module.name)\n'
        "heavy = ('torch', 'rclpy', 'onnxruntime', 'onnx', 'cv2', 'tokenizers', 'transformers', 'lerobot')\n"
        'print(sorted(name for name in heavy if name in sys.modules))\n'
    )
    # Run outside the repository: from its root, the project folder adamoe_contract/ would shadow the package.
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert result.stdout.strip() == '[]'


@pytest.mark.parametrize(
    'src_hw, dst_hw', [((480, 640), (128, 128)), ((64, 48), (128, 128)), ((128, 128), (96, 160)), ((7, 5), (3, 11))]
)
def test_resize_with_pad_equals_opencv_bilinear(src_hw, dst_hw):
    cv2 = pytest.importorskip('cv2')  # what the runtime used before the contract did it in numpy
    image = np.random.default_rng(0).random((*src_hw, 3), dtype=np.float32)
    ratio = max(src_hw[1] / dst_hw[1], src_hw[0] / dst_hw[0])
    new_h, new_w = int(src_hw[0] / ratio), int(src_hw[1] / ratio)
    expected = np.zeros((*dst_hw, 3), dtype=np.float32)
    expected[dst_hw[0] - new_h :, dst_hw[1] - new_w :] = cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_LINEAR
    )
    actual = resize_with_pad(image, *dst_hw, pad_value=0.0)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_backend_protocol_fixes_the_infer_signature():
    parameters = list(inspect.signature(PolicyBackend.infer).parameters)
    assert parameters == ['self', 'observation', 'prefix_actions', 'inference_delay', 'noise_seed', 'noise']
    with pytest.raises(ValueError, match='schedule'):
        RtcOptions(schedule='CUBIC')


def test_inputs_are_checked_against_the_spec():
    spec = load_spec(DEMO)
    images = {cam: np.zeros((*spec.image_size[cam], 3), np.uint8) for cam in spec.camera_names}
    state = check_observation(Observation(images, np.zeros(spec.state_dim), 'go'), spec)
    assert state.dtype == np.float32 and state.shape == (spec.state_dim,)
    with pytest.raises(ValueError, match='state: expected 9'):
        check_observation(Observation(images, np.zeros(3), 'go'), spec)
    prefix = normalized_prefix(np.tile(spec.action_norm.mean, (20, 1)), 2, spec)
    assert prefix.shape == (spec.horizon, spec.action_dim) and np.allclose(prefix, 0.0, atol=1e-6)
    with pytest.raises(ValueError, match='inference_delay'):
        normalized_prefix(prefix, spec.horizon + 1, spec)


def test_bad_list_entries_are_named(tmp_path):
    folder = tmp_path / 'bundle'
    shutil.copytree(DEMO, folder)
    data = json.loads((folder / 'bundle.json').read_text())
    data['joint_names'][2] = 7
    (folder / 'bundle.json').write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"field 'joint_names\[2\]' must be str, got int"):
        load_spec(folder)
