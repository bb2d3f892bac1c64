"""End to end: inputs from another process, the policy node on the demo bundle, chunks and safe commands out."""

import signal
import time

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import JointState
from test_policy_support import (
    MAX_VELOCITY,
    Harness,
    assert_commands_safe,
    collect,
    control_period_s,
    parameter_ns,
    policy_overrides,
    stamps_and_values,
    start_inputs,
)

from adamoe_ros.policy.inputs import camera_stream
from adamoe_ros.ros_env import stamp_to_ns

MEASURED = np.array([0.3, -0.4, 0.5, 0.2, 0.0, 0.4])


@pytest.fixture
def harness():
    h = Harness(policy_overrides(command_stream='both'))
    yield h
    h.close()


def test_commands_flow_stop_on_stale_camera_and_ramp_on_resume(harness):
    node, recorder = harness.node, harness.recorder
    commands = collect(harness, JointState, 'joint_command')  # stamped on the node clock when sent

    def resumed_after(t_ns: int) -> bool:
        """Whether a command came stamped at or after the first camera frame stamped at or after t_ns."""
        with recorder.lock:
            frames = [f for f in recorder.frames if f >= t_ns]
        return bool(frames) and any(stamp_to_ns(m.header.stamp) >= min(frames) for m in list(commands))

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    inputs = start_inputs('--duration', '120', '--positions', *map(str, MEASURED))
    try:
        assert harness.wait_for(lambda: node.status_message().stale_inputs == [], 60.0), (
            node.status_message().stale_inputs
        )
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert harness.wait_for(lambda: len(recorder.chunks) >= 2 and len(commands) >= 20, 60.0)
        # A camera outage once commands flow: SIGUSR1 stops the input process's cameras, SIGUSR2 restarts them.
        inputs.send_signal(signal.SIGUSR1)
        assert harness.wait_for(lambda: camera_stream('front') in node.status_message().stale_inputs, 60.0)
        restarted_ns = time.time_ns()  # the node clock is system time: frames stamped from now on follow the outage
        inputs.send_signal(signal.SIGUSR2)
        assert harness.wait_for(lambda: resumed_after(restarted_ns), 60.0)
    finally:
        inputs.kill()
        inputs.wait()
    with recorder.lock:
        chunks = list(recorder.chunks)
        frames = np.array(recorder.frames, dtype=np.int64)
    stamps, values = stamps_and_values(commands)
    period_s = control_period_s(node)

    # Every command is finite, inside the limits and one velocity-limited step from the previous one
    # (or from the measured position where commanding resumed).
    assert_commands_safe(values, MEASURED, period_s)

    # Chunks carry the bundle's shape and timing.
    chunk = chunks[0][1]
    assert chunk.horizon == 16 and chunk.action_dim == 6 and len(chunk.actions) == 16 * 6
    assert chunk.joint_names[0] == 'shoulder_pan' and abs(chunk.dt - 0.1) < 1e-9
    assert [c.chunk_index for _, c in chunks] == list(range(len(chunks)))

    # Commands stopped once the camera went stale: the last before the outage came at most max_image_age after
    # the last frame, the node's own rule on its own clock. (The recorder shares the node's transport, and no
    # newer frame pushed that last one out of its queue: it has the newest frame the node had.)
    last_frame, back = frames[frames < restarted_ns].max(), frames[frames >= restarted_ns].min()
    before = stamps < back
    assert stamps[before].max() - last_frame <= parameter_ns(node, 'max_image_age')
    # Resumption ramps from the measured position: the first command is one step from it.
    first_after = values[np.argmax(~before)]
    assert np.all(np.abs(first_after - MEASURED) <= MAX_VELOCITY * period_s + 1e-9)
    status = node.status_message()
    assert status.stale_events >= 1 and status.chunks_published >= 2
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
