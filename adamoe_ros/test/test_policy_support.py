"""Shared helpers of the policy node tests: bundle location, node parameters, an in-process harness."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from adamoe_contract.robots import load_robot_profile
from adamoe_ros.bundles import PICK_PLACE
from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.policy.node import PolicyNode
from adamoe_ros.ros_env import (
    BUFFERED_SENSOR_QOS,
    LATCHED_QOS,
    NS_PER_S,
    RELIABLE_QOS,
    SENSOR_QOS,
    ns_to_stamp,
    stamp_to_ns,
)
from adamoe_ros.ros_image import numpy_to_image
from adamoe_ros.tools.fake_inputs import SO101
from adamoe_ros_interfaces.msg import ActionChunk, PolicyStatus

PACKAGE = Path(__file__).resolve().parents[1]
BUNDLE = PICK_PLACE
SO101_CONFIG = PACKAGE / 'config' / 'so101.yaml'
PROFILE_PATH = Path(__file__).parent / 'fixtures' / 'so101_test_limits.yaml'
PROFILE = load_robot_profile(PROFILE_PATH)
LOWER = np.array(PROFILE.lower_limits)
UPPER = np.array(PROFILE.upper_limits)
(MAX_VELOCITY,) = set(PROFILE.max_velocity)  # one velocity limit for every joint
SIM_STEP_NS = 10_000_000  # simulated time per SimRun step
# The fast test node's control rate and input age limit (policy_overrides).
CONTROL_RATE = 50.0
MAX_INPUT_AGE_S = 0.3


def policy_overrides(**extra: object) -> list[Parameter]:
    """Parameters of a fast test node on the demo bundle (short timeouts, quick status)."""
    values: dict[str, object] = {
        'bundle_path': str(BUNDLE),
        'robot_profile': str(PROFILE_PATH),
        'control_rate': CONTROL_RATE,
        'max_image_age': MAX_INPUT_AGE_S,
        'max_joint_state_age': MAX_INPUT_AGE_S,
        'max_extra_state_age': MAX_INPUT_AGE_S,
        'status_rate': 5.0,
        'warn_throttle': 5.0,
        'noise_seed': 0,
    }
    values.update(extra)
    return [Parameter(k, value=v) for k, v in values.items()]


def control_period_s(node: Node) -> float:
    """The node's control period (s), from its control_rate parameter."""
    return 1.0 / node.get_parameter('control_rate').value


def parameter_ns(node: Node, name: str) -> int:
    """A parameter of the node in seconds (an age), in nanoseconds."""
    return round(node.get_parameter(name).value * NS_PER_S)


def start_inputs(*args: str) -> subprocess.Popen:
    """Run the synthetic input publisher in another process (same ROS domain as the test)."""
    return subprocess.Popen(
        [sys.executable, '-m', 'adamoe_ros.tools.fake_inputs', *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Recorder(Node):
    """Records what the policy node publishes, with arrival times (time.monotonic), and the front camera's stamps."""

    def __init__(self, **kwargs) -> None:
        super().__init__('policy_test_recorder', **kwargs)
        self.lock = threading.Lock()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.chunks: list[tuple[float, ActionChunk]] = []
        self.status: list[PolicyStatus] = []
        self.frames: list[int] = []  # header stamps (ns)
        self.create_subscription(Image, SO101.camera_topic('front'), self._on_frame, BUFFERED_SENSOR_QOS)
        self.create_subscription(
            Float64MultiArray, 'forward_position_controller/commands', self._on_command, RELIABLE_QOS
        )
        self.create_subscription(ActionChunk, 'policy/action_chunk', self._on_chunk, RELIABLE_QOS)
        self.create_subscription(PolicyStatus, 'policy/status', self._on_status, RELIABLE_QOS)

    def _on_command(self, msg: Float64MultiArray) -> None:
        with self.lock:
            self.commands.append((time.monotonic(), np.array(msg.data)))

    def _on_frame(self, msg: Image) -> None:
        with self.lock:
            self.frames.append(stamp_to_ns(msg.header.stamp))

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self.lock:
            self.chunks.append((time.monotonic(), msg))

    def _on_status(self, msg: PolicyStatus) -> None:
        with self.lock:
            self.status.append(msg)


class SimDriver(Node):
    """Publishes /clock and all policy inputs, stamped in simulated time, one step at a time."""

    def __init__(self, **kwargs) -> None:
        super().__init__('sim_driver', **kwargs)
        self.clock_pub = self.create_publisher(Clock, '/clock', 10)
        self.cameras = [self.create_publisher(Image, SO101.camera_topic(c), SENSOR_QOS) for c in ('front', 'wrist')]
        self.joints = self.create_publisher(JointState, 'joint_states', SENSOR_QOS)
        self.extra = self.create_publisher(Float64MultiArray, 'sim/cube_position', SENSOR_QOS)
        self.create_publisher(String, 'instruction', LATCHED_QOS).publish(String(data='pick up the cube'))
        self.frame = numpy_to_image(np.full((48, 64, 3), 90, np.uint8), 'rgb8')

    def step(self, t_ns: int, frames: bool, positions: np.ndarray | None) -> None:
        """Set the clock to t_ns, then publish camera frames (if frames) and joint states (unless None)."""
        self.clock_pub.publish(Clock(clock=ns_to_stamp(t_ns)))
        stamp = ns_to_stamp(t_ns)
        if frames:
            self.frame.header.stamp = stamp
            for publisher in self.cameras:
                publisher.publish(self.frame)
        if positions is not None:
            msg = JointState(name=list(SO101.joint_names), position=positions.tolist())
            msg.header.stamp = stamp
            self.joints.publish(msg)
        self.extra.publish(Float64MultiArray(data=[0.2, 0.0, 0.02]))


class Harness:
    """A context with the policy node and a recorder spinning on one executor (single-threaded, like the runner)."""

    def __init__(
        self, overrides: list[Parameter], node_name: str = 'policy_node', cli_args: list[str] | None = None
    ) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = PolicyNode(node_name, context=self.context, parameter_overrides=overrides, cli_args=cli_args)
        sim_time = [p for p in overrides if p.name == 'use_sim_time']
        self.recorder = Recorder(context=self.context, parameter_overrides=sim_time)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.recorder)
        self.spinner = ExecutorThread(self.executor).start()

    def wait_for(self, predicate, timeout: float, step: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(step)
        return predicate()

    def close(self) -> None:
        try:
            self.node.trigger_shutdown()
        except Exception:  # noqa: BLE001 - already finalized
            pass
        self.spinner.stop()  # before destroying: a spinning executor still adds the nodes' entities
        self.node.destroy_node()
        self.recorder.destroy_node()
        rclpy.try_shutdown(context=self.context)


def collect(harness: Harness, msg_type: type, topic: str, qos=RELIABLE_QOS) -> list:
    """Subscribe the recorder to topic; the returned list fills with the messages as they arrive."""
    received: list = []
    lock = threading.Lock()

    def store(msg):
        with lock:
            received.append(msg)

    harness.recorder.create_subscription(msg_type, topic, store, qos)
    return received


def stamps_and_values(commands: list[JointState]) -> tuple[np.ndarray, np.ndarray]:
    """Header stamps (ns) and positions of JointState commands, in the order they arrived."""
    messages = list(commands)
    return np.array([stamp_to_ns(m.header.stamp) for m in messages]), np.array([m.position for m in messages])


class SimRun:
    """The policy node on a simulated clock, driven step by step; records its commands and chunks.

    Commands are the JointState stream, stamped on the node clock when sent.
    """

    def __init__(self, **overrides: object) -> None:
        self.harness = Harness(policy_overrides(use_sim_time=True, command_stream='both', **overrides))
        self.node = self.harness.node
        self.driver = SimDriver(context=self.harness.context)
        self.harness.executor.add_node(self.driver)
        self.commands = collect(self.harness, JointState, 'joint_command')
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        self._tick = next(t for t in self.node.timers if t.callback == self.node._on_control_tick)

    def drive(self, start_ns: int, end_ns: int, inputs: Callable[[int], tuple[bool, np.ndarray | None]]) -> None:
        """Step the clock from start to end; inputs(t) says whether frames come at t and the joint positions.

        Each step waits for the node's control tick at t and for any inference in flight, so inference takes no
        simulated time however slowly it runs (synced to the camera, it is in flight from the moment the node has
        taken the frame it waited for).
        """
        for t in range(start_ns, end_ns, SIM_STEP_NS):
            self.driver.step(t, *inputs(t))
            assert self.harness.wait_for(partial(self._step_done, t), 30.0, step=0.001), f'node stuck at {t} ns'

    def _step_done(self, t_ns: int) -> bool:
        ticked = (
            self.node.get_clock().now().nanoseconds == t_ns
            and self._tick.time_until_next_call() > 0  # the tick due at t_ns (if one is) was taken...
            and self._tick.callback_group.can_execute(self._tick)  # ...and has returned
        )
        return ticked and not self.node.inference_in_flight

    def sent(self) -> tuple[np.ndarray, np.ndarray]:
        """Stamps and values of every command, in the order they arrived."""
        return stamps_and_values(self.commands)

    def chunk_stamps(self) -> np.ndarray:
        with self.harness.recorder.lock:
            return np.array([stamp_to_ns(c.header.stamp) for _, c in self.harness.recorder.chunks])

    def close(self) -> None:
        self.harness.close()


def so101_params_file() -> list[str]:
    """Command-line arguments that load the SO-101 robot profile, as `ros2 run` with --params-file would."""
    return ['--ros-args', '--params-file', str(SO101_CONFIG)]


def assert_commands_safe(values: np.ndarray, measured: np.ndarray, period: float) -> None:
    """Finite, inside the limits, and each command one velocity-limited step from the previous command or,
    when commanding (re)starts after a stale input, from the measured position."""
    assert np.all(np.isfinite(values))
    assert np.all(values >= LOWER - 1e-9) and np.all(values <= UPPER + 1e-9)
    max_step = MAX_VELOCITY * period + 1e-9
    from_previous = np.all(np.abs(np.diff(values, axis=0)) <= max_step, axis=1)
    from_measured = np.all(np.abs(values[1:] - np.clip(measured, LOWER, UPPER)) <= max_step, axis=1)
    bad = np.flatnonzero(~(from_previous | from_measured))
    assert bad.size == 0, f'command jumps at {bad[:5]}: {values[bad[0]]} -> {values[bad[0] + 1]}'


def engine_children() -> list[int]:
    """Pids of this process's children that run an engine process and have not exited."""
    pids = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            state, ppid = stat.read_text().rsplit(')', 1)[1].split()[:2]
            cmdline = (stat.parent / 'cmdline').read_bytes()
        except OSError:
            continue  # ended meanwhile
        if int(ppid) == os.getpid() and state != 'Z' and b'adamoe_ros.engine.process' in cmdline:
            pids.append(int(stat.parent.name))
    return pids
