"""Output variants: dry run (chunks, no commands), blend mode with JointState commands, trajectory timing,
expert usage and diagnostics."""

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import JointState
from test_policy_support import LOWER, UPPER, Harness, collect, policy_overrides, start_inputs
from trajectory_msgs.msg import JointTrajectory

from adamoe_ros.tools.fake_inputs import SO101
from adamoe_ros_interfaces.msg import ExpertUsage


def run_active(harness: Harness, until, timeout: float = 20.0) -> None:
    """Configure and activate with inputs from another process until the condition holds."""
    inputs = start_inputs('--duration', str(timeout + 5))
    try:
        assert harness.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert harness.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert harness.wait_for(until, timeout)
        time.sleep(0.5)  # anything that should not come would show up by now
        assert harness.node.status_message().state == 'active'
    finally:
        inputs.kill()
        inputs.wait()


def test_dry_run_publishes_chunks_but_no_commands():
    harness = Harness(policy_overrides(dry_run=True, execution_mode='latest', command_stream='both'))
    trajectories = collect(harness, JointTrajectory, 'joint_trajectory_controller/joint_trajectory')
    joint_commands = collect(harness, JointState, 'joint_command')
    try:
        run_active(harness, lambda: len(harness.recorder.chunks) >= 3)
        status = harness.node.status_message()
    finally:
        harness.close()
    assert len(harness.recorder.chunks) >= 2
    assert harness.recorder.commands == [] and joint_commands == [] and trajectories == []
    assert status.dry_run and not status.commanding and status.execution_mode == 'latest'


def test_blend_mode_joint_state_commands_trajectory_usage_and_diagnostics():
    harness = Harness(policy_overrides(execution_mode='blend', command_stream='joint_state'))
    trajectories = collect(harness, JointTrajectory, 'joint_trajectory_controller/joint_trajectory')
    joint_commands = collect(harness, JointState, 'joint_command')
    usage = collect(harness, ExpertUsage, 'policy/expert_usage')
    diagnostics = collect(harness, DiagnosticArray, '/diagnostics')
    try:
        run_active(
            harness,
            lambda: len(usage) >= 3 and len(trajectories) >= 3 and len(joint_commands) > 30 and len(diagnostics) >= 1,
        )
    finally:
        harness.close()
    assert harness.recorder.commands == []  # only the JointState stream was selected
    assert len(joint_commands) > 20
    assert all(list(m.name) == list(SO101.joint_names) for m in joint_commands)
    positions = np.array([m.position for m in joint_commands])
    assert np.all(positions >= LOWER - 1e-9) and np.all(positions <= UPPER + 1e-9)

    assert len(trajectories) >= 2
    for trajectory in trajectories:
        assert list(trajectory.joint_names) == list(SO101.joint_names)
        offsets = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in trajectory.points])
        assert offsets[0] > 0 and offsets[0] <= 0.1 + 1e-6
        np.testing.assert_allclose(np.diff(offsets), 0.1, atol=1e-6)  # the bundle's dt
        points = np.array([p.positions for p in trajectory.points])
        assert np.all(points >= LOWER - 1e-9) and np.all(points <= UPPER + 1e-9)

    assert len(usage) >= 2
    first = usage[0]
    fraction = np.array(first.token_fraction).reshape(first.num_layers, first.num_experts)
    np.testing.assert_allclose(fraction.sum(axis=1), first.top_k, atol=1e-4)
    assert first.routing_mode and len(first.layer_indices) == first.num_layers
    assert [u.chunk_index for u in usage] == list(range(len(usage)))
    assert any(s.name.endswith('policy') for d in diagnostics for s in d.status)
