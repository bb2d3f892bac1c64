"""Faults the policy node rides out: a joint-state stall, a camera at 2 Hz, the sim clock jumping back, the bundle
damaged under a running node, and the sim bridge killed and restarted.

After each, no command comes from the queue planned before it, and commanding resumes with a ramp from the measured
position. On a simulated clock the times are exact (the driver steps /clock and waits for the node); commands are
the JointState stream, stamped on the node clock when sent."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from test_policy_support import (
    BUNDLE,
    CONTROL_RATE,
    LOWER,
    MAX_INPUT_AGE_S,
    MAX_VELOCITY,
    SIM_STEP_NS,
    UPPER,
    Harness,
    SimRun,
    collect,
    policy_overrides,
    start_inputs,
)

from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, RELIABLE_QOS, SENSOR_QOS, stamp_to_ns
from adamoe_ros.tools.fake_inputs import SO101

MS = 1_000_000
PERIOD_NS = round(NS_PER_S / CONTROL_RATE)
MAX_AGE_NS = round(MAX_INPUT_AGE_S * NS_PER_S)  # max_image_age and max_joint_state_age of policy_overrides()
MAX_STEP = MAX_VELOCITY * PERIOD_NS / NS_PER_S + 1e-9
MEASURED = np.array([0.1, 0.2, -0.3, 0.4, 0.0, 0.5])
MOVED = MEASURED + np.array([0.4, -0.3, 0.3, -0.2, 0.5, 0.4])  # the arm after the fault: far away in steps


def assert_no_jump(values: np.ndarray, measured: np.ndarray) -> None:
    """Finite, inside the limits, each command one step from the previous one or from the measured position."""
    assert np.all(np.isfinite(values))
    assert np.all(values >= LOWER - 1e-9) and np.all(values <= UPPER + 1e-9)
    from_measured = np.all(np.abs(values - np.clip(measured, LOWER, UPPER)) <= MAX_STEP, axis=1)
    from_previous = np.r_[False, np.all(np.abs(np.diff(values, axis=0)) <= MAX_STEP, axis=1)]
    bad = np.flatnonzero(~(from_previous | from_measured))
    assert bad.size == 0, f'command {bad[0]} jumps to {values[bad[0]]}'


def every(period_ns: int) -> Callable[[int], bool]:
    return lambda t: t % period_ns == 0


def test_joint_state_stall_stops_commands_and_resumes_from_the_new_measurement():
    stall = (3 * NS_PER_S, 4 * NS_PER_S)  # no joint states; the arm is somewhere else afterwards
    frames = every(50 * MS)
    run = SimRun()
    try:
        run.drive(
            NS_PER_S,
            6 * NS_PER_S,
            lambda t: (frames(t), None if stall[0] <= t < stall[1] else MEASURED if t < stall[0] else MOVED),
        )
        stamps, values = run.sent()
        chunks = run.chunk_stamps()
    finally:
        run.close()
    before = stamps < stall[1]
    stale_from = stall[0] - SIM_STEP_NS + MAX_AGE_NS  # the last joint state, plus max_joint_state_age
    assert before.sum() > 20 and stale_from - PERIOD_NS - SIM_STEP_NS <= stamps[before].max() <= stale_from + PERIOD_NS
    first = int(np.argmax(~before))
    assert (~before).sum() > 20
    # Planned after the stall, ramping from the arm where it is now.
    assert np.any((chunks >= stall[1]) & (chunks <= stamps[first])), 'resumed from a chunk planned before the stall'
    assert np.all(np.abs(values[first] - MOVED) <= MAX_STEP), values[first]
    assert_no_jump(values[before], MEASURED)
    assert_no_jump(values[~before], MOVED)


def test_camera_at_2_hz_commands_only_fresh_chunks():
    slow_from = 3 * NS_PER_S
    fast, slow = every(50 * MS), every(500 * MS)
    # Inference on the next frame would wait longer than max_image_age at 2 Hz: compute on request instead, so
    # each fresh half second gets its own chunk.
    run = SimRun(sync_inference_to_camera=False)
    try:
        run.drive(NS_PER_S, 7 * NS_PER_S, lambda t: (fast(t) if t < slow_from else slow(t), MEASURED))
        stamps, values = run.sent()
        chunks = run.chunk_stamps()
    finally:
        run.close()
    last_frame = np.where(stamps < slow_from, stamps - stamps % (50 * MS), stamps - stamps % (500 * MS))
    # Nothing while the camera is stale (one control period to notice).
    assert np.all(stamps - last_frame <= MAX_AGE_NS + PERIOD_NS), (stamps - last_frame).max()
    # After each stale spell, commands come from a chunk observed on the frame that ended it.
    after_stale = last_frame >= slow_from + 500 * MS
    for stamp, frame in zip(stamps[after_stale], last_frame[after_stale]):
        assert np.any((chunks >= frame) & (chunks <= stamp)), f'command at {stamp} from a chunk before {frame}'
    windows = np.unique(last_frame[after_stale])
    assert windows.size >= 4, f'commands in only {windows.size} of the 2 Hz frames'
    assert_no_jump(values, MEASURED)


def test_sim_clock_jumping_back_discards_inputs_queue_and_reference():
    old, new = (10 * NS_PER_S, 13 * NS_PER_S), (1 * NS_PER_S, 4 * NS_PER_S)  # a sim reset: the clock goes back
    frames = every(50 * MS)
    run = SimRun()
    try:
        run.drive(*old, lambda t: (frames(t), MEASURED))
        run.drive(*new, lambda t: (frames(t), MOVED))
        stamps, values = run.sent()
        chunks = run.chunk_stamps()
        status = run.node.status_message()
    finally:
        run.close()
    before, after = stamps >= old[0], stamps < new[1]
    assert before.sum() > 20 and after.sum() > 20
    first = int(np.argmax(after))
    assert np.all(before[:first]), 'a command of the old time line came after the reset'
    assert np.any((chunks >= new[0]) & (chunks <= stamps[first])), 'resumed from a chunk planned before the reset'
    assert np.all(np.abs(values[first] - MOVED) <= MAX_STEP), values[first]
    assert_no_jump(values[after], MOVED)
    assert status.stale_events >= 1


def test_restart_ramps_from_a_measurement_taken_after_the_last_command():
    # An ideal position-controlled arm: it reports the last command. Its joint states pause just before the
    # camera does, and come back after it: meanwhile the newest joint state is fresh but older than the last
    # command, so it does not show where the arm is.
    camera_gap, state_gap = (2900 * MS, 3200 * MS), (3000 * MS, 3400 * MS)
    frames = every(50 * MS)
    start = np.array([1.8, -1.6, 1.5, 0.0, 2.6, 1.4])  # near the limits: the policy moves the arm at once
    run = SimRun(max_image_age=0.2, max_joint_state_age=0.5)

    def arm(t: int) -> tuple[bool, np.ndarray | None]:
        moving = not camera_gap[0] <= t < camera_gap[1] and frames(t)
        if state_gap[0] <= t < state_gap[1]:
            return moving, None
        return moving, np.array(run.commands[-1].position) if run.commands else start

    try:
        run.drive(NS_PER_S, 5 * NS_PER_S, arm)
        stamps, values = run.sent()
        status = run.node.status_message()
    finally:
        run.close()
    assert status.stale_events >= 1 and np.any(stamps > state_gap[1])
    assert np.all(np.abs(values[0] - np.clip(start, LOWER, UPPER)) <= MAX_STEP)
    steps = np.abs(np.diff(values, axis=0)).max(axis=1)
    assert np.all(steps <= MAX_STEP), f'jump of {steps.max():.3f} rad at {stamps[1:][steps.argmax()] / NS_PER_S} s'


@pytest.mark.parametrize('damage', ['corrupted', 'replaced'])
def test_damaged_bundle_refuses_reconfigure_then_a_good_one_loads(tmp_path, damage):
    bundle = tmp_path / 'bundle'
    shutil.copytree(BUNDLE, bundle)
    harness = Harness(policy_overrides(bundle_path=str(bundle)))
    node, recorder = harness.node, harness.recorder
    inputs = start_inputs('--duration', '120')
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert harness.wait_for(lambda: len(recorder.chunks) >= 2, 30.0)
        if damage == 'corrupted':
            weights = bundle / 'denoise.onnx'
            weights.write_bytes(weights.read_bytes()[:1000])
        else:
            shutil.rmtree(bundle)
            bundle.mkdir()
            (bundle / 'bundle.json').write_text('{"format_version": 1, "cameras": [')
        # The loaded engine keeps running; the files are read again only by the next configure.
        chunks = len(recorder.chunks)
        assert harness.wait_for(lambda: len(recorder.chunks) >= chunks + 2, 30.0)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        status = node.status_message()
        assert status.state == 'unconfigured'
        assert status.message.startswith('configure failed') and str(bundle) in status.message, status.message
        shutil.rmtree(bundle)
        shutil.copytree(BUNDLE, bundle)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.status_message().message == ''
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        commands = len(recorder.commands)
        assert harness.wait_for(lambda: len(recorder.commands) >= commands + 10, 30.0)
    finally:
        inputs.kill()
        inputs.wait()
        harness.close()


def start_bridge() -> subprocess.Popen:
    """The sim bridge in its own process: /clock, joint states, cameras at 10 Hz, commands in."""
    return subprocess.Popen(
        [sys.executable, '-m', 'adamoe_ros.sim.bridge_node', '--ros-args', '-p', 'camera_rate:=10.0'],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sim_bridge_killed_and_restarted():
    max_age_s = MAX_AGE_NS / NS_PER_S
    bridge = start_bridge()
    harness = Harness(policy_overrides(use_sim_time=True, command_stream='both'))
    node = harness.node
    clocks = collect(harness, Clock, '/clock', RELIABLE_QOS)
    states = collect(harness, JointState, 'joint_states', SENSOR_QOS)
    frames = {c: collect(harness, Image, SO101.camera_topic(c), SENSOR_QOS) for c in ('front', 'wrist')}
    commands = collect(harness, JointState, 'joint_command')
    harness.recorder.create_publisher(String, 'instruction', LATCHED_QOS).publish(String(data='pick up the cube'))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert harness.wait_for(lambda: node.status_message().stale_inputs == [], 60.0), node.status_message()
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert harness.wait_for(lambda: len(commands) >= 20, 30.0), node.status_message()

        bridge.send_signal(signal.SIGKILL)
        bridge.wait()
        # Once /clock has gone quiet the node's clock stands still: it sends nothing more.
        seen = -1
        while seen != len(clocks):
            seen = len(clocks)
            time.sleep(2 * max_age_s)
        last_clock = stamp_to_ns(clocks[-1].clock)
        held = len(commands)
        time.sleep(4 * max_age_s)
        assert len(commands) == held, 'commands while the sim bridge was down'
        old = [stamp_to_ns(m.header.stamp) for m in commands]
        assert max(old) <= last_clock

        fresh_from = {name: len(received) for name, received in frames.items()}
        states_from, chunks_from = len(states), len(harness.recorder.chunks)
        bridge = start_bridge()  # a new sim: its clock starts again from zero
        assert harness.wait_for(lambda: len(commands) >= held + 20, 60.0), node.status_message()
    finally:
        bridge.kill()
        bridge.wait()
        harness.close()
    new = list(commands)[held:]
    stamps = np.array([stamp_to_ns(m.header.stamp) for m in new])
    values = np.array([m.position for m in new])
    # Only once every input of the new sim had arrived, and from a chunk planned on them.
    first_inputs = [stamp_to_ns(received[fresh_from[name]].header.stamp) for name, received in frames.items()]
    new_states = states[states_from:]
    state_stamps = np.array([stamp_to_ns(m.header.stamp) for m in new_states])
    assert stamps[0] >= max(first_inputs + [state_stamps[0]])
    chunks = np.array([stamp_to_ns(c.header.stamp) for _, c in harness.recorder.chunks[chunks_from:]])
    assert np.any(chunks <= stamps[0]), 'resumed from a chunk planned before the restart'
    # Each command one step from the previous one or from a measured position of the last max_joint_state_age.
    positions = np.array([[m.position[list(m.name).index(j)] for j in SO101.joint_names] for m in new_states])
    for i, (stamp, value) in enumerate(zip(stamps, values)):
        recent = positions[(state_stamps <= stamp) & (state_stamps >= stamp - MAX_AGE_NS)]
        from_measured = np.any(np.all(np.abs(value - np.clip(recent, LOWER, UPPER)) <= MAX_STEP, axis=1))
        from_previous = i > 0 and np.all(np.abs(value - values[i - 1]) <= MAX_STEP)
        assert from_measured or from_previous, f'command {i} after the restart jumps to {value}'
