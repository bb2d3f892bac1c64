"""The robot profiles agree with the outside truth (the MJCF the sim loads, the demo bundle) and with the
parameter files in config/ that repeat some of their facts (ROS parameter files cannot include another file)."""

from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml

from adamoe_contract.robots import load_robot_profile
from adamoe_contract.spec import load_spec
from adamoe_ros import bundles
from adamoe_ros.recorder.config import RecorderConfig
from adamoe_ros.sim.scene import SO101, SceneOptions, build_model, wheel_scene_path
from adamoe_ros.sim.tasks import MULTITASK, PICK_PLACE, scene_for_state

CONFIG = Path(__file__).resolve().parents[1] / 'config'


def _parameters(file: str, node: str = '/**') -> dict:
    return yaml.safe_load((CONFIG / file).read_text())[node]['ros__parameters']


def test_so101_limits_are_the_actuator_ranges_of_the_mjcf_the_sim_loads():
    model = build_model(SceneOptions())
    ranges = np.array([model.actuator_ctrlrange[model.actuator(name).id] for name in SO101.joint_names])
    np.testing.assert_array_equal(ranges[:, 0], SO101.lower_limits)
    np.testing.assert_array_equal(ranges[:, 1], SO101.upper_limits)
    # Each actuator drives the joint of its name, whose own range is the same up to rounding.
    for name in SO101.joint_names:
        assert model.joint(model.actuator(name).trnid[0]).name == name
        np.testing.assert_allclose(
            model.jnt_range[model.joint(name).id], ranges[SO101.joint_names.index(name)], atol=1e-5
        )
    raw = mujoco.MjModel.from_xml_path(str(wheel_scene_path()))
    assert raw.nu == len(SO101.joint_names)  # the profile names every actuator of the arm
    for camera in SO101.camera_names:
        assert model.camera(camera).name == camera


@pytest.mark.parametrize(('bundle', 'scene'), [(bundles.PICK_PLACE, PICK_PLACE), (bundles.MULTITASK, MULTITASK)])
def test_shipped_bundles_were_trained_on_the_so101_profile_and_their_scene(bundle, scene):
    spec = load_spec(bundle)
    assert spec.joint_names == SO101.joint_names
    assert spec.camera_names == SO101.camera_names
    assert scene_for_state(spec.state_names[len(spec.joint_names) :]) is scene


@pytest.mark.parametrize('file', ['so101.yaml', 'aloha.yaml'])
def test_policy_parameter_files_repeat_their_profile(file):
    params = _parameters(file)
    robot = load_robot_profile(params['robot_profile'])
    assert params['camera_names'] == list(robot.camera_names)
    assert params['camera_topics'] == [c.topic for c in robot.cameras]
    assert params['camera_transports'] == [c.transport for c in robot.cameras]
    if robot.extra_state_names:
        assert params['extra_state_topic'] == robot.extra_state_topic


def test_recorder_and_sim_parameter_files_repeat_the_so101_profile():
    recorder = _parameters('record_so101.yaml', '/**/recorder')
    assert recorder['joint_names'] == list(SO101.joint_names)
    assert recorder['camera_names'] == list(SO101.camera_names)
    assert recorder['camera_topics'] == [c.topic for c in SO101.cameras]
    assert recorder['extra_state_topic'] == SO101.extra_state_topic
    assert recorder['extra_state_names'] == list(SO101.extra_state_names)
    assert recorder['robot_type'] == SO101.name
    defaults = RecorderConfig()
    assert defaults.state_names == list(SO101.state_names) and defaults.robot_type == SO101.name
    # The launched sim is the single-task scene, whose expert says the profile's instruction.
    scene = _parameters('sim_so101.yaml', '/**/sim_bridge')['scene']
    assert _parameters('sim_so101.yaml', '/**/scripted_expert')['scene'] == scene == PICK_PLACE.name
    assert PICK_PLACE.tasks[0].train == (SO101.default_instruction,)
    assert (PICK_PLACE.state_topic, PICK_PLACE.state_names) == (SO101.extra_state_topic, SO101.extra_state_names)
