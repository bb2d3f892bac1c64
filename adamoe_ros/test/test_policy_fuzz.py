"""Fuzz: thousands of malformed and random messages on every input; the node stays alive, rejects and counts
them, and never publishes a NaN, out-of-limit or over-speed command."""

import time
from functools import partial

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from test_policy_support import Harness, assert_commands_safe, control_period_s, policy_overrides, start_inputs

from adamoe_ros.policy.inputs import JOINT_STATE_STREAM
from adamoe_ros.tools.fake_inputs import SO101, random_image, random_instruction, random_joint_state

FUZZ_COUNT = 3000  # malformed messages of the in-process test
FUZZ_RATE = 500  # malformed messages per second from the input process (FUZZ_COUNT in 6 s)
MEASURED = np.array([1.8, -1.6, 1.5, 0.0, 2.6, 1.4])  # near the limits
# What refuses the input process's fuzz on each topic (on the last camera: frames stamped long ago).
FUZZED_RULES = (
    ('cameras/front/image_raw', 'content'),
    ('joint_states', 'content'),
    ('instruction', 'content'),
    ('sim/cube_position', 'content'),
    ('cameras/wrist/image_raw', 'too_old'),
)


def test_cross_process_fuzz_keeps_commands_safe():
    harness = Harness(policy_overrides())
    inputs = start_inputs(
        '--duration', '120', '--fuzz-rate', str(FUZZ_RATE), '--seed', '3', '--positions', *map(str, MEASURED)
    )
    node, recorder = harness.node, harness.recorder

    def enough() -> bool:
        """Chunks and commands while the fuzz flows, and every kind of fuzz refused by its rule."""
        refused = node._rejections.per_rule
        return (
            node.status_message().chunks_published >= 3
            and len(recorder.commands) > 50
            and all(refused[topic, rule] for topic, rule in FUZZED_RULES)
        )

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        # Best-effort delivery drops part of the fuzz and delays good inputs (more under load): the inputs run
        # until enough came through, however long that takes.
        assert harness.wait_for(enough, 60.0), (node.status_message(), dict(node._rejections.per_rule))
        assert inputs.poll() is None, inputs.communicate()[0]  # the fuzz flowed all along
        status, period_s = node.status_message(), control_period_s(node)
    finally:
        inputs.kill()
        inputs.wait()
        harness.close()
    assert status.state == 'active'
    with recorder.lock:
        values = np.stack([c for _, c in recorder.commands])
    assert_commands_safe(values, MEASURED, period_s)


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
        worst_cpu_s = 0.0
        for i in range(FUZZ_COUNT):
            kind = i % 4
            if kind == 0:
                topic, image = 'cameras/front/image_raw', random_image(rng)
                image.header.stamp = node.get_clock().now().to_msg()  # a good stamp: the content is what fails
                deliver = partial(node._on_camera, 'front', topic, image)
            elif kind == 1:
                topic, deliver = 'joint_states', partial(node._on_joint_state, random_joint_state(rng))
            elif kind == 2:
                topic, deliver = 'instruction', partial(node._on_instruction, String(data=random_instruction(rng)))
            else:
                values = rng.normal(size=int(rng.choice([0, 2, 4]))).tolist()
                topic, deliver = 'sim/cube_position', partial(node._on_extra_state, Float64MultiArray(data=values))
            start = time.thread_time()  # CPU time of this thread, which runs the callback: not slowed by load
            deliver()
            worst_cpu_s = max(worst_cpu_s, time.thread_time() - start)
            topics[topic] += 1
        assert dict(node._rejections.per_topic) == topics
        assert node.status_message().rejected_messages == FUZZ_COUNT
        # Nothing malformed replaced the accepted state.
        np.testing.assert_allclose(node._buffer.get(JOINT_STATE_STREAM), [0.1] * 6)
        assert node._buffer.get('instruction') is None
        # Refusing a message never costs the single-threaded executor a control period.
        assert worst_cpu_s < control_period_s(node), worst_cpu_s
    finally:
        harness.close()
