"""Robot profiles in config/: loadable as ROS parameter files, complete, consistent with their robots."""

from dataclasses import fields

import pytest
import rclpy
import yaml
from rclpy.lifecycle import TransitionCallbackReturn
from test_policy_support import PACKAGE

from adamoe_contract.robots import load_robot_profile
from adamoe_ros.policy.node import PolicyNode
from adamoe_ros.policy.params import PolicyParams, read_policy_parameters
from adamoe_ros.tools.parameter_template import policy_parameter_template

CONFIG = PACKAGE / 'config'
PROFILES = {'so101.yaml': 6, 'aloha.yaml': 14, 'generic_template.yaml': 0}
PARAMETERS = [f.name for f in fields(PolicyParams)]


def load_node(profile: str, context: rclpy.Context) -> PolicyNode:
    return PolicyNode(context=context, cli_args=['--ros-args', '--params-file', str(CONFIG / profile)])


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize('profile', sorted(PROFILES))
def test_profile_parses_and_names_only_known_parameters(profile, context):
    values = yaml.safe_load((CONFIG / profile).read_text())['/**']['ros__parameters']
    unknown = set(values) - set(PARAMETERS)
    assert not unknown, f'{profile}: unknown parameters {unknown}'
    node = load_node(profile, context)
    try:
        params = read_policy_parameters(node)
        robot = load_robot_profile(params.robot_profile) if params.robot_profile else None
        assert (len(robot.joint_names) if robot else 0) == PROFILES[profile]  # the profile checks its limits
        assert len(params.camera_topics) == len(params.camera_transports) == len(params.camera_names)
    finally:
        node.destroy_node()


def test_template_is_generated_from_the_parameter_table():
    text = (CONFIG / 'generic_template.yaml').read_text()
    assert text == policy_parameter_template(), 'run: python -m adamoe_ros.tools.parameter_template > ' + str(
        CONFIG / 'generic_template.yaml'
    )
    values = yaml.safe_load(text)['/**']['ros__parameters']
    assert values == {
        f.name: list(f.default) if isinstance(f.default, tuple) else f.default for f in fields(PolicyParams)
    }


def test_so101_profile_configures_with_the_demo_bundle(context):
    node = load_node('so101.yaml', context)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        node.destroy_node()


def test_template_alone_refuses_to_configure(context):
    node = load_node('generic_template.yaml', context)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.status_message().state == 'unconfigured'
    finally:
        node.destroy_node()
