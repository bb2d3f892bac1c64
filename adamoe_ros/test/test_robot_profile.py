"""The robot profiles agree with the outside truth (the MJCF the sim loads, the demo bundle); the policy node reads
its robot's topics from them; the recorder and sim parameter files that repeat some of their facts agree with them
(those nodes take no profile, and ROS parameter files cannot include another file)."""

from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml

from adamoe_contract.robots import ROBOTS_DIR
from adamoe_contract.spec import load_spec
from adamoe_ros import bundles
from adamoe_ros.policy.params import PolicyParams, check_against_bundle
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


def test_the_policy_node_takes_camera_and_extra_state_topics_from_the_profile(tmp_path):
    spec = load_spec(bundles.PICK_PLACE)  # front and wrist cameras, the cube position as extra state
    fit = check_against_bundle(PolicyParams(robot_profile='so101'), spec)
    assert fit.camera_topics == tuple(c.topic for c in SO101.cameras)
    assert fit.camera_transports == tuple(c.transport for c in SO101.cameras)
    assert fit.extra_state_topic == SO101.extra_state_topic
    # Another profile of the same joints: its topics and transports, and no extra state to offer.
    profile = yaml.safe_load((ROBOTS_DIR / 'so101.yaml').read_text())
    profile['cameras'] = [
        {'name': 'front', 'topic': 'arm/front/image_raw/compressed', 'transport': 'compressed'},
        {'name': 'wrist', 'topic': 'arm/wrist/image', 'transport': 'raw'},
    ]
    del profile['extra_state']
    profile['name'] = 'arm'
    path = tmp_path / 'arm.yaml'
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ValueError, match=r"extra_state_topic: the bundle has extra state .*'arm' publishes \[\]"):
        check_against_bundle(PolicyParams(robot_profile=str(path)), spec)
    # The multi-task bundle's state (both cubes, both goals) is not what the so101 profile's topic carries.
    with pytest.raises(ValueError, match='extra_state_topic: the bundle has extra state'):
        check_against_bundle(PolicyParams(robot_profile='so101'), load_spec(bundles.MULTITASK))
    multitask = PolicyParams(robot_profile='so101', extra_state_topic=MULTITASK.state_topic)
    assert check_against_bundle(multitask, load_spec(bundles.MULTITASK)).extra_state_topic == MULTITASK.state_topic
    fit = check_against_bundle(PolicyParams(robot_profile=str(path), extra_state_topic='arm/cube'), spec)
    assert fit.camera_topics == ('arm/front/image_raw/compressed', 'arm/wrist/image')
    assert fit.camera_transports == ('compressed', 'raw')
    assert fit.extra_state_topic == 'arm/cube'
    # Parameters win; a transport the profile does not stream falls back to cameras/<name>/image_raw[/compressed].
    fit = check_against_bundle(
        PolicyParams(robot_profile=str(path), extra_state_topic='arm/cube', camera_transports=('raw', 'compressed')),
        spec,
    )
    assert fit.camera_topics == ('cameras/front/image_raw', 'cameras/wrist/image_raw/compressed')
    given = ('a/front', 'b/wrist')
    fit = check_against_bundle(
        PolicyParams(robot_profile=str(path), extra_state_topic='arm/cube', camera_topics=given), spec
    )
    assert fit.camera_topics == given and fit.camera_transports == ('compressed', 'raw')


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
