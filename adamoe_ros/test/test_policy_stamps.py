"""Stamp rules against a hostile publisher in another process, the node at its so101.yaml parameters.

A message stamped in the future must not block the correctly stamped messages after it, and a stream half-blocked
by replayed joint states must not become the position a restart ramps from. The node clock is the system clock
here, as is the client's: every time below is on that clock."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from test_policy_support import Harness, collect, so101_params_file, stamps_and_values

from adamoe_contract.robots import load_robot_profile
from adamoe_ros.ros_env import NS_PER_S

CLIENT = Path(__file__).parent / 'support' / 'stamp_client.py'
P0 = np.array([0.0, -0.5, 0.5, 0.3, 0.0, 0.5])
P1 = P0 + np.array([0.6, 0.4, -0.4, 0.0, 0.5, 0.3])  # where the arm is after `move`: far from P0 in steps
FAR_AHEAD_S = 10.0  # the lead of the bad stamps; any sane max_future_stamp is far below it


class Client:
    """The stamp client process; send() returns the ROS time (ns) at which a command took effect."""

    def __init__(self, positions: np.ndarray) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CLIENT), *map(str, positions)],
            env=dict(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._line() == 'ready'

    def _line(self) -> str:
        line = self.proc.stdout.readline().strip()
        assert line, f'stamp client ended (exit {self.proc.poll()})'
        return line

    def send(self, command: str) -> int:
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        while not (line := self._line()).startswith('ok '):
            pass  # log lines of the child
        return int(line.split()[2])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def so101_harness() -> tuple[Harness, list]:
    """The node with the SO-101 profile; JointState commands as well, whose stamps say when each was sent."""
    harness = Harness(
        [Parameter('command_stream', value='both'), Parameter('status_rate', value=5.0)], cli_args=so101_params_file()
    )
    return harness, collect(harness, JointState, harness.node.get_parameter('joint_command_topic').value)


def start_commanding(harness: Harness, commands: list) -> None:
    node = harness.node
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert harness.wait_for(lambda: node.status_message().stale_inputs == [], 20.0), node.status_message()
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert harness.wait_for(lambda: len(commands) >= 20, 20.0), node.status_message()


def now_ns(harness: Harness) -> int:
    return harness.node.get_clock().now().nanoseconds


@pytest.mark.parametrize('stream', ['front', 'joint_states'])
def test_future_stamp_is_rejected_and_does_not_block_the_stream(stream):
    harness, commands = so101_harness()
    client = Client(P0)
    node = harness.node
    try:
        start_commanding(harness, commands)
        topic = (
            node.get_parameter('joint_states_topic').value
            if stream == 'joint_states'
            else load_robot_profile(node.get_parameter('robot_profile').value).camera_topic(stream)
        )
        max_age_s = node.get_parameter('max_joint_state_age' if stream == 'joint_states' else 'max_image_age').value
        sent = 5  # the same bad message a few times, so that best-effort delivery surely brings one
        bad_ns = client.send(f'future {stream} {FAR_AHEAD_S} {sent}')
        # Had a bad stamp been taken as the newest, every good message after it would be refused: the stream
        # would go stale max_age after the bad stamp arrived and stay so until the clock passes the bad stamp.
        window = (bad_ns + int(2 * max_age_s * NS_PER_S), bad_ns + int(6 * max_age_s * NS_PER_S))
        assert harness.wait_for(lambda: now_ns(harness) > window[1], 30.0)
        status = node.status_message()
    finally:
        client.close()
        harness.close()
    stamps, _ = stamps_and_values(commands)
    in_window = np.count_nonzero((stamps > window[0]) & (stamps < window[1]))
    assert in_window > 0, f'no command between {2 * max_age_s} s and {6 * max_age_s} s after the bad stamp'
    # Only the bad messages broke the future-stamp rule, and no correctly stamped one was refused as out of order
    # (which a bad stamp taken as the newest would cause). A good message may still be refused as too old when the
    # machine is loaded: that is the age rule at work, not the bad stamp.
    rejected = harness.node._rejections.per_rule
    assert 1 <= rejected[topic, 'future_stamp'] <= sent, (rejected, status.message)
    assert rejected[topic, 'out_of_order'] == 0, (rejected, status.message)


def test_replayed_joint_states_never_become_the_restart_reference():
    harness, commands = so101_harness()
    client = Client(P0)
    node = harness.node
    try:
        start_commanding(harness, commands)
        js_age = node.get_parameter('max_joint_state_age').value
        image_age = node.get_parameter('max_image_age').value
        rate = node.get_parameter('control_rate').value
        robot = load_robot_profile(node.get_parameter('robot_profile').value)
        velocity, lower, upper = (np.array(v) for v in (robot.max_velocity, robot.lower_limits, robot.upper_limits))
        # The hostile replay of P0, stamped ahead and repeated faster than max_joint_state_age: were it taken,
        # the stream would stay "fresh" with P0 while the arm reports P1.
        client.send(f'block {FAR_AHEAD_S} {js_age / 2}')
        time.sleep(4 * js_age)
        client.send('move ' + ' '.join(map(str, P1)))
        time.sleep(4 * js_age)
        # A camera pause longer than max_image_age stops the commands; they restart from the measured position.
        gap_ns = client.send(f'gap {2 * image_age}')
        stopped_ns = gap_ns + int((image_age + 1.0 / rate) * NS_PER_S)
        assert harness.wait_for(lambda: (stamps_and_values(commands)[0] > stopped_ns).sum() >= 10, 30.0), (
            node.status_message()
        )
        status = node.status_message()
    finally:
        client.close()
        harness.close()
    stamps, values = stamps_and_values(commands)
    restart = int(np.argmax(stamps > stopped_ns))
    max_step = velocity / rate + 1e-9
    first, measured = values[restart], np.clip(P1, lower, upper)
    assert np.all(np.abs(first - measured) <= max_step), (
        f'restart command {first} is not one step from the measured {measured} (the replayed P0 is {P0})'
    )
    # Each later command one step from the previous one, or from P1 where (on a loaded machine) it restarted again.
    after = values[restart:]
    from_previous = np.all(np.abs(np.diff(after, axis=0)) <= max_step, axis=1)
    assert np.all(from_previous | np.all(np.abs(after[1:] - measured) <= max_step, axis=1))
    assert status.stale_events >= 1 and status.rejected_messages >= 1
