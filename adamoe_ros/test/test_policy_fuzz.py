"""Fuzz: thousands of malformed and random messages on every input; the node stays alive, rejects and counts
them, and never publishes a NaN, out-of-limit or over-speed command."""

import time

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from test_policy_support import Harness, assert_commands_safe, policy_overrides, start_inputs

from adamoe_ros.policy.inputs import JOINT_STATE_STREAM
from adamoe_ros.tools.fake_inputs import SO101, random_image, random_instruction, random_joint_state

FUZZ_COUNT = 3000
MEASURED = np.array([1.8, -1.6, 1.5, 0.0, 2.6, 1.4])  # near the limits


def test_cross_process_fuzz_keeps_commands_safe():
    harness = Harness(policy_overrides())
    inputs = start_inputs(
        '--duration', '8', '--fuzz', str(FUZZ_COUNT), '--seed', '3', '--positions', *map(str, MEASURED)
    )
    node, recorder = harness.node, harness.recorder
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        output = inputs.communicate(timeout=30)[0]
        assert inputs.returncode == 0, output
        status = node.status_message()
    finally:
        inputs.kill()
        harness.close()
    assert f"'malformed': {FUZZ_COUNT}" in output
    # Best-effort delivery drops part of the burst (more under load, and before discovery completes); hundreds
    # still reach the node and are counted (the in-process test below checks the exact count).
    assert status.rejected_messages >= 100, status.rejected_messages
    assert status.chunks_published >= 3 and status.state == 'active'
    with recorder.lock:
        values = np.stack([c for _, c in recorder.commands])
    assert len(values) > 50
    assert_commands_safe(values, MEASURED, 1.0 / 50.0)


def test_every_malformed_message_is_rejected_and_counted():
    harness = Harness(policy_overrides(warn_throttle=60.0))
    node = harness.node
    rng = np.random.default_rng(7)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        good = JointState(name=list(SO101.joint_names), position=[0.1] * 6)
        good.header.stamp = node.get_clock().now().to_msg()
        node._on_joint_state(good)
        topics = {'cameras/front/image_raw': 0, 'joint_states': 0, 'instruction': 0, 'sim/cube_position': 0}
        start = time.monotonic()
        for i in range(FUZZ_COUNT):
            kind = i % 4
            if kind == 0:
                image = random_image(rng)
                image.header.stamp = node.get_clock().now().to_msg()  # a good stamp: the content is what fails
                node._on_camera('front', 'cameras/front/image_raw', image)
                topics['cameras/front/image_raw'] += 1
            elif kind == 1:
                node._on_joint_state(random_joint_state(rng))
                topics['joint_states'] += 1
            elif kind == 2:
                node._on_instruction(String(data=random_instruction(rng)))
                topics['instruction'] += 1
            else:
                node._on_extra_state(Float64MultiArray(data=rng.normal(size=int(rng.choice([0, 2, 4]))).tolist()))
                topics['sim/cube_position'] += 1
        elapsed = time.monotonic() - start
        assert dict(node._rejections.per_topic) == topics
        assert node.status_message().rejected_messages == FUZZ_COUNT
        # Nothing malformed replaced the accepted state.
        np.testing.assert_allclose(node._buffer.get(JOINT_STATE_STREAM), [0.1] * 6)
        assert node._buffer.get('instruction') is None
        assert elapsed < 10.0
    finally:
        harness.close()
