"""Sim bridge and scripted expert over real ROS topics and services, on one executor thread per test."""

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, RELIABLE_QOS, SENSOR_QOS, stamp_to_ns
from adamoe_ros.ros_image import to_rgb8
from adamoe_ros.sim import SO101
from adamoe_ros.sim.bridge_node import SimBridgeNode
from adamoe_ros.sim.expert_plan import SETTLE_AFTER_RELEASE_S
from adamoe_ros.sim.scripted_expert import ScriptedExpertNode
from adamoe_ros.sim.so101 import HOME_POSITION
from adamoe_ros.sim.tasks import MULTITASK
from adamoe_ros_interfaces.srv import GetTaskStatus, ResetSim


class Harness:
    """Bridge (+ optional expert) and a probe node spinning in a private context."""

    def __init__(self, with_expert: bool = False, expert_params: dict | None = None, **params: object) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter(k, value=v) for k, v in {'real_time_factor': 8.0, 'camera_rate': 0.0, **params}.items()]
        # A private namespace (and /clock remapped into it) keeps other sims on this ROS domain out.
        namespace = f'/simtest_{uuid.uuid4().hex[:8]}'
        common = {
            'context': self.context,
            'namespace': namespace,
            'cli_args': ['--ros-args', '-r', f'/clock:={namespace}/clock'],
        }
        self.bridge = SimBridgeNode(parameter_overrides=overrides, **common)
        expert_overrides = [Parameter(k, value=v) for k, v in (expert_params or {}).items()]
        self.expert = ScriptedExpertNode(parameter_overrides=expert_overrides, **common) if with_expert else None
        self.probe = Node('sim_test_probe', **common)
        self.joint_states: list[JointState] = []
        self.clock: list[Clock] = []
        self.probe.create_subscription(JointState, 'joint_states', self.joint_states.append, SENSOR_QOS)
        self.probe.create_subscription(Clock, '/clock', self.clock.append, RELIABLE_QOS)
        self.forward = self.probe.create_publisher(
            Float64MultiArray, 'forward_position_controller/commands', RELIABLE_QOS
        )
        self.trajectory = self.probe.create_publisher(
            JointTrajectory, 'joint_trajectory_controller/joint_trajectory', RELIABLE_QOS
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        for node in (self.bridge, self.expert, self.probe):
            if node is not None:
                self.executor.add_node(node)
        self.spinner = ExecutorThread(self.executor).start()

    def call(self, srv_type: type, name: str, request: object, timeout: float = 10.0) -> object:
        client = self.probe.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), name
        future = client.call_async(request)
        wait_for(future.done, timeout)
        self.probe.destroy_client(client)
        return future.result()

    def latest_positions(self) -> np.ndarray:
        msg = self.joint_states[-1]
        return np.array([msg.position[list(msg.name).index(n)] for n in SO101.joint_names])

    def close(self) -> None:
        self.spinner.stop()
        for node in (self.bridge, self.expert, self.probe):
            if node is not None:
                node.destroy_node()
        rclpy.shutdown(context=self.context)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def settle(h: Harness) -> None:
    """Let the released cube come to rest, in sim time, before the physics judges it."""
    until = h.bridge.now_ns() + SETTLE_AFTER_RELEASE_S * NS_PER_S
    assert wait_for(lambda: h.bridge.now_ns() >= until, 30.0)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def test_forward_commands_reach_targets_and_nan_is_rejected(harness: Harness) -> None:
    assert wait_for(lambda: len(harness.joint_states) > 5)
    target = [0.3, 0.4, -0.3, 0.5, -0.4, 0.8]
    harness.forward.publish(Float64MultiArray(data=target))
    assert wait_for(lambda: np.allclose(harness.latest_positions(), target, atol=0.05), 15.0), (
        harness.latest_positions()
    )
    harness.forward.publish(Float64MultiArray(data=[float('nan')] + target[1:]))
    harness.forward.publish(Float64MultiArray(data=target[:5]))  # wrong length: refused too
    count = len(harness.joint_states)
    assert wait_for(lambda: len(harness.joint_states) > count + 20)
    np.testing.assert_allclose(harness.bridge.sim.joint_targets(), target, atol=1e-9)
    harness.forward.publish(Float64MultiArray(data=[9.0] * 6))  # out of range: clamped to the limits
    limits = harness.bridge.sim.joint_limits[:, 1]
    assert wait_for(lambda: np.allclose(harness.bridge.sim.joint_targets(), limits), 10.0)


def test_trajectory_is_followed_and_stamps_are_sim_time(harness: Harness) -> None:
    assert wait_for(lambda: len(harness.joint_states) > 5)
    msg = JointTrajectory(joint_names=['shoulder_lift', 'elbow_flex'])  # zero stamp: from receipt
    for t, (lift, elbow) in ((0.5, (0.3, -0.2)), (1.0, (0.6, -0.5))):
        msg.points.append(
            JointTrajectoryPoint(positions=[lift, elbow], time_from_start=rclpy.duration.Duration(seconds=t).to_msg())
        )
    harness.trajectory.publish(msg)
    expected = np.array([0.0, 0.6, -0.5, 0.0, 0.0, 0.6])
    assert wait_for(lambda: np.allclose(harness.latest_positions(), expected, atol=0.05), 15.0), (
        harness.latest_positions()
    )
    stamps = [stamp_to_ns(m.header.stamp) for m in list(harness.joint_states)]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert stamps[-1] <= harness.bridge.now_ns()  # stamped with sim time, never ahead of it
    assert stamps[-1] == pytest.approx(harness.bridge.now_ns(), abs=1e9)


def test_the_reset_stamp_divides_the_episodes_on_the_sim_clock(harness: Harness) -> None:
    assert wait_for(lambda: len(harness.joint_states) > 5)  # connected: the command is not lost
    target = [0.3, 0.4, -0.3, 0.5, -0.4, 0.8]
    harness.forward.publish(Float64MultiArray(data=target))
    assert wait_for(lambda: np.allclose(harness.latest_positions(), target, atol=0.05), 15.0)
    reset = harness.call(ResetSim, 'sim/reset', ResetSim.Request(seed=3))
    start = stamp_to_ns(reset.stamp)
    assert wait_for(lambda: stamp_to_ns(harness.joint_states[-1].header.stamp) > start)
    states = [(stamp_to_ns(m.header.stamp), np.array(m.position)) for m in harness.joint_states]
    before = [p for ns, p in states if ns < start]
    after = [p for ns, p in states if ns >= start]
    np.testing.assert_allclose(before[-1], target, atol=0.05)  # the old episode's last state
    np.testing.assert_allclose(after[0], HOME_POSITION, atol=1e-6)  # the new one's first: the reset pose


def test_reset_is_seeded_and_do_nothing_is_not_success(harness: Harness) -> None:
    cubes: list[Float64MultiArray] = []
    harness.probe.create_subscription(Float64MultiArray, 'sim/cube_position', cubes.append, SENSOR_QOS)
    first = harness.call(ResetSim, 'sim/reset', ResetSim.Request(seed=11))
    assert first.success and first.seed == 11
    cube_a = harness.bridge.sim.cube_position()
    nxt = harness.call(ResetSim, 'sim/reset', ResetSim.Request(seed=-1))
    assert nxt.seed == 12
    again = harness.call(ResetSim, 'sim/reset', ResetSim.Request(seed=11))
    assert again.seed == 11
    np.testing.assert_allclose(harness.bridge.sim.cube_position(), cube_a, atol=1e-4)  # it may settle a step
    count = len(cubes)
    assert wait_for(lambda: len(cubes) > count + 3)
    np.testing.assert_allclose(cubes[-1].data, cube_a, atol=2e-3)
    clock_before = stamp_to_ns(harness.clock[-1].clock)
    assert wait_for(lambda: harness.bridge.sim.time > 2.0, 15.0)
    status = harness.call(GetTaskStatus, 'sim/task_status', GetTaskStatus.Request())
    assert not status.success and status.distance_to_goal > 0.05 and status.episode_time > 2.0
    assert stamp_to_ns(harness.clock[-1].clock) > clock_before  # /clock never jumps back on reset


def test_cameras_publish_rgb8_frames_that_are_not_blank() -> None:
    h = Harness(camera_rate=5.0, image_width=64, image_height=48, real_time_factor=2.0)
    try:
        frames: dict[str, list[Image]] = {'front': [], 'wrist': []}
        for cam, sink in frames.items():
            h.probe.create_subscription(Image, SO101.camera_topic(cam), sink.append, SENSOR_QOS)
        assert wait_for(lambda: all(len(v) >= 2 for v in frames.values()), 20.0)
        for cam, msgs in frames.items():
            img = to_rgb8(msgs[-1])
            assert img.shape == (48, 64, 3) and msgs[-1].encoding == 'rgb8'
            assert img.std() > 10.0, cam
            assert stamp_to_ns(msgs[-1].header.stamp) > 0
    finally:
        h.close()


def test_scripted_expert_solves_the_task_through_topics() -> None:
    h = Harness(with_expert=True, real_time_factor=8.0)
    try:
        leader: list[JointState] = []
        status: list[String] = []
        instructions: list[String] = []
        h.probe.create_subscription(JointState, 'leader/joint_states', leader.append, RELIABLE_QOS)
        h.probe.create_subscription(String, 'expert/status', status.append, LATCHED_QOS)
        h.probe.create_subscription(String, 'instruction', instructions.append, LATCHED_QOS)
        successes = 0
        held: list[JointState] = []
        for seed in (4, 9):
            h.call(ResetSim, 'sim/reset', ResetSim.Request(seed=seed))
            assert wait_for(lambda: not h.expert.holding)  # the reset's task message ends the last episode's hold
            assert wait_for(lambda: h.expert.start_episode()[0] if not h.expert.running else True)
            assert h.expert.episode_done.wait(60.0)
            done_at = len(leader)
            settle(h)
            held = leader[done_at:]
            successes += h.call(GetTaskStatus, 'sim/task_status', GetTaskStatus.Request()).success
        assert successes == 2
        # Done, the leader goes on streaming its last target while the cube settles (a recorder keeps those frames).
        assert len(held) >= 2 and all(list(m.position) == list(held[0].position) for m in held)
        assert len(leader) > 20 and list(leader[-1].name) == list(SO101.joint_names)
        leader_stamps = np.array([stamp_to_ns(m.header.stamp) for m in leader])
        assert np.all(np.diff(leader_stamps) > 0)
        # Between control ticks the leader repeats the held target, one message per joint state the expert gets
        # (how many arrive is up to the scheduler: best effort), so there are more messages than targets.
        changes = leader_stamps[
            [i for i in range(1, len(leader)) if list(leader[i].position) != list(leader[i - 1].position)]
        ]
        assert 10 < len(changes) < len(leader)
        # Targets change only on control ticks, each at the first joint state at or after a tick time of the sim
        # clock; so k further changes take more than k - 1 control periods of sim time, however late they come.
        period_ns = NS_PER_S / h.expert.get_parameter('control_rate').value
        for k in (1, 5, 10):
            assert np.all(changes[k:] - changes[:-k] > (k - 1) * period_ns), k
        assert wait_for(lambda: bool(status) and status[-1].data == 'done')
        assert instructions and instructions[-1].data == SO101.default_instruction
        # The Trigger service refuses nothing once data flows, and reports why when it would.
        response = h.call(Trigger, 'expert/start_episode', Trigger.Request())
        assert response.success, response.message
    finally:
        h.close()


def test_scripted_expert_solves_every_instruction_through_topics() -> None:
    """Each multi-task task on its own seed: told on sim/task, said as a train phrase, solved within the limits."""
    h = Harness(with_expert=True, expert_params={'scene': 'multitask'}, scene='multitask', real_time_factor=8.0)
    max_step = np.array(SO101.max_velocity) / h.expert.get_parameter('control_rate').value
    try:
        leader: list[JointState] = []
        instructions: list[String] = []
        h.probe.create_subscription(JointState, 'leader/joint_states', leader.append, RELIABLE_QOS)
        h.probe.create_subscription(String, 'instruction', instructions.append, LATCHED_QOS)
        for seed, task in enumerate(MULTITASK.tasks, start=len(MULTITASK.tasks)):
            reply = h.call(ResetSim, 'sim/reset', ResetSim.Request(seed=seed))
            assert task.name in reply.message
            assert wait_for(
                lambda task=task: h.expert.task == task and instructions and instructions[-1].data in task.train
            )
            start_ns = h.bridge.now_ns()  # the last episode's hold went out before this reset's task was heard
            assert h.expert.start_episode()[0]
            assert h.expert.episode_done.wait(60.0)
            settle(h)
            status = h.call(GetTaskStatus, 'sim/task_status', GetTaskStatus.Request())
            assert status.success, (task.name, status.message)
            # The leader repeats each target between control ticks: the commands are its distinct values.
            targets = [np.array(m.position) for m in leader if stamp_to_ns(m.header.stamp) >= start_ns]
            # (The first command's step from the measured joints is checked in test_sim_multitask.)
            commands = np.array([targets[0]] + [b for a, b in zip(targets, targets[1:]) if not np.array_equal(a, b)])
            assert np.all(np.abs(np.diff(commands, axis=0)) <= max_step + 1e-9), task.name
    finally:
        h.close()


def test_recovery_expert_pushes_the_follower_off_while_the_leader_records_the_intended_commands() -> None:
    """With `recovery` some first grasps are disturbed: the commands topic carries the follower's commands,
    leader/joint_states (what a recorder stores) the intended ones, and the follower comes back to the leader."""
    expert_params = {'scene': 'multitask', 'recovery': True}
    h = Harness(with_expert=True, expert_params=expert_params, scene='multitask', real_time_factor=8.0)
    max_step = np.array(SO101.max_velocity) / h.expert.get_parameter('control_rate').value
    try:
        leader: list[JointState] = []
        follower: list[Float64MultiArray] = []
        h.probe.create_subscription(JointState, 'leader/joint_states', leader.append, RELIABLE_QOS)
        h.probe.create_subscription(Float64MultiArray, 'forward_position_controller/commands', follower.append, 10)
        outcomes = []  # per episode: seed, disturbed, solved
        for seed in range(12, 24):
            h.call(ResetSim, 'sim/reset', ResetSim.Request(seed=seed))
            assert wait_for(lambda: not h.expert.holding)
            leader.clear()
            follower.clear()
            assert h.expert.start_episode()[0]
            assert h.expert.episode_done.wait(60.0)
            settle(h)
            solved = h.call(GetTaskStatus, 'sim/task_status', GetTaskStatus.Request()).success
            intended = np.array([m.position for m in leader])
            sent = np.array([m.data for m in follower])
            off = [np.abs(intended - command).sum(axis=1).min() > 1e-9 for command in sent]
            outcomes.append((seed, any(off), solved))
            assert np.all(np.abs(np.diff(sent, axis=0)) <= max_step + 1e-9), seed
            np.testing.assert_allclose(sent[-1], intended[-1], err_msg=str(seed))  # back with the leader by the end
            if len({d for _, d, _ in outcomes}) == 2:  # one of each
                break
        assert len({d for _, d, _ in outcomes}) == 2, outcomes
        # Undisturbed episodes are solved; whether a disturbed grasp still holds depends on how the jaws met the cube,
        # which the joint-state timing under load shifts (the regrasp itself: test_sim_multitask, without ROS).
        assert all(solved for _, disturbed, solved in outcomes if not disturbed), outcomes
    finally:
        h.close()


def test_launch_parameter_file_matches_the_declared_parameters() -> None:
    config = Path(__file__).resolve().parents[1] / 'config' / 'sim_so101.yaml'
    sections = yaml.safe_load(config.read_text())
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []
    try:
        for name, cls in (('sim_bridge', SimBridgeNode), ('scripted_expert', ScriptedExpertNode)):
            params = sections[f'/**/{name}']['ros__parameters']
            node = cls(
                context=context,
                namespace=f'/simtest_{uuid.uuid4().hex[:8]}',
                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
            )
            nodes.append(node)
            for key, value in params.items():
                assert node.has_parameter(key), f'{name}: {key} in sim_so101.yaml is not a parameter'
                assert node.get_parameter(key).value == value
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=context)
