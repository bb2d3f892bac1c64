"""The policy node with its engine in a child process (engine_host 'process'), inputs from another process.

Commands flow as with the inference thread; when the engine process dies the node says so and holds the measured
position; shutting the node down leaves no child process behind.
"""

import os
import signal
import time

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn
from test_policy_support import (
    Harness,
    assert_commands_safe,
    control_period_s,
    engine_children,
    policy_overrides,
    start_inputs,
)

from adamoe_ros.policy.inputs import JOINT_STATE_STREAM

SCHEDULING_SLACK = 1.0  # a loaded 2-core machine
MEASURED = np.array([0.3, -0.4, 0.5, 0.2, 0.0, 0.4])


def test_engine_process_commands_then_its_death_holds_the_measured_position():
    harness = Harness(policy_overrides(engine_host='process'))
    node, recorder = harness.node, harness.recorder
    period_s = control_period_s(node)
    inputs = start_inputs('--duration', '30', '--positions', *map(str, MEASURED))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        pid = node._engine.pid

        # Fresh inputs from this test's publisher (its positions), not from one a previous test left in the domain.
        def fresh_and_ours() -> bool:
            positions = node._buffer.get(JOINT_STATE_STREAM)
            ours = positions is not None and np.allclose(positions, MEASURED)
            return ours and node.status_message().stale_inputs == []

        assert harness.wait_for(fresh_and_ours, 10.0)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert harness.wait_for(lambda: len(recorder.chunks) >= 2 and len(recorder.commands) >= 20, 10.0)

        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # A watcher thread sees the death at once, not at the next inference.
        assert harness.wait_for(lambda: 'killed by SIGKILL' in node.status_message().message, SCHEDULING_SLACK)

        def hold_index() -> int | None:
            """Index of the hold: the first command at the measured position that arrived after the kill."""
            with recorder.lock:
                arrived = list(recorder.commands)
            held = (
                i for i, (t, c) in enumerate(arrived) if t > killed_at and np.allclose(c, MEASURED, rtol=0, atol=1e-9)
            )
            return next(held, None)

        assert harness.wait_for(lambda: hold_index() is not None, 10.0), 'no hold after the engine process died'
        hold = hold_index()
        status = node.status_message()  # the hold went out as the plan was dropped
        assert 'engine process' in status.message and not status.commanding, status
        # Nothing follows the hold: ten control periods after it arrived, it is still the last command.
        with recorder.lock:
            held_at = recorder.commands[hold][0]
        time.sleep(max(0.0, held_at + 10 * period_s - time.monotonic()))
        with recorder.lock:
            values = np.stack([c for _, c in recorder.commands])
        assert len(values) == hold + 1, f'{len(values) - hold - 1} commands after the hold'
        assert_commands_safe(values, MEASURED, period_s)
        frames = node.timings.frames_received
        assert frames['front'] > 0 and frames['wrist'] > 0
        assert 0 < node.timings.frames_unused['front'] < frames['front']  # most frames no inference took

        # A new configure starts a new engine process.
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert engine_children() == [node._engine.pid] and node._engine.pid != pid
    finally:
        inputs.kill()
        harness.close()
    assert engine_children() == []  # shutdown stopped the engine process
