"""End to end: inputs from another process, the policy node on the demo bundle, chunks and safe commands out."""

import time

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from test_policy_support import (
    MAX_VELOCITY,
    Harness,
    assert_commands_safe,
    policy_overrides,
    start_inputs,
)

CONTROL_PERIOD = 1.0 / 50.0
MAX_IMAGE_AGE = 0.3
SCHEDULING_SLACK = 0.2
GAP = (5.0, 6.5)  # seconds of the input process without camera frames
MEASURED = np.array([0.3, -0.4, 0.5, 0.2, 0.0, 0.4])


@pytest.fixture
def harness():
    h = Harness(policy_overrides())
    yield h
    h.close()


def test_commands_flow_stop_on_stale_camera_and_ramp_on_resume(harness):
    node, recorder = harness.node, harness.recorder
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    inputs = start_inputs('--duration', '9', '--camera-gap', f'{GAP[0]}:{GAP[1]}', '--positions', *map(str, MEASURED))
    try:
        assert harness.wait_for(lambda: node.status_message().stale_inputs == [], 6.0), (
            node.status_message().stale_inputs
        )
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert harness.wait_for(lambda: len(recorder.chunks) >= 2 and len(recorder.commands) >= 20, 5.0)
        assert inputs.wait(timeout=15) == 0, inputs.stdout.read()
        time.sleep(0.2)
    finally:
        inputs.kill()
    with recorder.lock:
        commands = list(recorder.commands)
        chunks = list(recorder.chunks)
        frames = np.array(recorder.frames)
    times = np.array([t for t, _ in commands])
    values = np.stack([c for _, c in commands])

    # Every command is finite, inside the limits and one velocity-limited step from the previous one
    # (or from the measured position where commanding resumed).
    assert_commands_safe(values, MEASURED, CONTROL_PERIOD)

    # Chunks carry the bundle's shape and timing.
    chunk = chunks[0][1]
    assert chunk.horizon == 16 and chunk.action_dim == 6 and len(chunk.actions) == 16 * 6
    assert chunk.joint_names[0] == 'shoulder_pan' and abs(chunk.dt - 0.1) < 1e-9
    assert [c.chunk_index for _, c in chunks] == list(range(len(chunks)))

    # The camera gap shows as the one long pause in the command stream.
    pauses = np.diff(times)
    gap_index = int(np.argmax(pauses))
    assert pauses[gap_index] > 0.5, f'no stale pause in the commands (longest {pauses[gap_index]:.3f} s)'
    # Commands stopped once the camera went stale: the last command came at most max_image_age + one
    # control period after the last frame (plus scheduling slack of a loaded 2-core CI machine; the exact
    # one-period bound is checked on a simulated clock in test_policy_sim_time.py).
    last_frame = frames[frames <= times[gap_index]].max()
    assert times[gap_index] - last_frame <= MAX_IMAGE_AGE + CONTROL_PERIOD + SCHEDULING_SLACK
    # Resumption ramps from the measured position: the first command is one step from it.
    first_after = values[gap_index + 1]
    assert np.all(np.abs(first_after - MEASURED) <= MAX_VELOCITY * CONTROL_PERIOD + 1e-9)
    status = node.status_message()
    assert status.stale_events >= 1 and status.chunks_published >= 2
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
