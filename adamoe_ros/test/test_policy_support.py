"""Shared helpers of the policy node tests: bundle location, node parameters, an in-process harness."""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray

from adamoe_ros.policy.node import PolicyNode
from adamoe_ros.ros_env import RELIABLE_QOS, SENSOR_QOS
from adamoe_ros_interfaces.msg import ActionChunk, PolicyStatus

PACKAGE = Path(__file__).resolve().parents[1]
BUNDLE = PACKAGE / 'adamoe_ros' / 'bundles' / 'so101_demo'
SO101_CONFIG = PACKAGE / 'config' / 'so101.yaml'
LOWER = np.array([-1.9, -1.7, -1.6, -1.6, -2.7, -0.1])
UPPER = np.array([1.9, 1.7, 1.6, 1.6, 2.7, 1.5])
MAX_VELOCITY = 1.5


def policy_overrides(**extra: object) -> list[Parameter]:
    """Parameters of a fast test node on the demo bundle (short timeouts, quick status)."""
    values: dict[str, object] = {
        'bundle_path': str(BUNDLE), 'joint_lower_limits': LOWER.tolist(), 'joint_upper_limits': UPPER.tolist(),
        'max_joint_velocity': [MAX_VELOCITY], 'control_rate': 50.0, 'max_image_age': 0.3,
        'max_joint_state_age': 0.3, 'max_extra_state_age': 0.3, 'status_rate': 5.0, 'warn_throttle': 5.0,
        'noise_seed': 0,
    }
    values.update(extra)
    return [Parameter(k, value=v) for k, v in values.items()]


def start_inputs(*args: str) -> subprocess.Popen:
    """Run the synthetic input publisher in another process (same ROS domain as the test)."""
    return subprocess.Popen([sys.executable, '-m', 'adamoe_ros.policy.fake_inputs', *args],
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Recorder(Node):
    """Records what the policy node publishes, with arrival times (time.monotonic)."""

    def __init__(self, **kwargs) -> None:
        super().__init__('policy_test_recorder', **kwargs)
        self.lock = threading.Lock()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.chunks: list[tuple[float, ActionChunk]] = []
        self.status: list[PolicyStatus] = []
        self.frames: list[float] = []
        self.create_subscription(Image, 'cameras/front/image_raw', self._on_frame, SENSOR_QOS)
        self.create_subscription(Float64MultiArray, 'forward_position_controller/commands',
                                 self._on_command, RELIABLE_QOS)
        self.create_subscription(ActionChunk, 'policy/action_chunk', self._on_chunk, RELIABLE_QOS)
        self.create_subscription(PolicyStatus, 'policy/status', self._on_status, RELIABLE_QOS)

    def _on_command(self, msg: Float64MultiArray) -> None:
        with self.lock:
            self.commands.append((time.monotonic(), np.array(msg.data)))

    def _on_frame(self, msg: Image) -> None:
        with self.lock:
            self.frames.append(time.monotonic())

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self.lock:
            self.chunks.append((time.monotonic(), msg))

    def _on_status(self, msg: PolicyStatus) -> None:
        with self.lock:
            self.status.append(msg)


class Harness:
    """A context with the policy node and a recorder spinning on one MultiThreadedExecutor."""

    def __init__(self, overrides: list[Parameter], node_name: str = 'policy_node') -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = PolicyNode(node_name, context=self.context, parameter_overrides=overrides)
        self.recorder = Recorder(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.recorder)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

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
        self.executor.shutdown()
        self.node.destroy_node()
        self.recorder.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=10)


# ---- temporary stand-in while the demo bundle is not committed -----------------------------------

class _StubSpec:
    camera_names = ('front', 'wrist')
    image_size = {'front': (48, 64), 'wrist': (48, 64)}
    joint_names = ('shoulder_pan', 'shoulder_lift', 'elbow_flex', 'wrist_flex', 'wrist_roll', 'gripper')
    state_names = joint_names + ('cube_x', 'cube_y', 'cube_z')
    action_dim = 6
    state_dim = 9
    dt = 0.1
    horizon = 16
    bundle_id = 'stub' * 16


class _StubRouting:
    token_fraction = np.full((2, 4), 0.25, np.float32)
    mean_weight = np.full((2, 4), 0.5, np.float32)
    layer_indices = (1, 3)
    mode = 'adamoe'
    top_k = 1


class StubEngine:
    """Engine with the demo spec: a slow sine around the state, 30 ms per call."""

    spec = _StubSpec()

    def infer(self, observation, prefix_actions=None, inference_delay=0, noise_seed=None):
        from types import SimpleNamespace
        time.sleep(0.03)
        base = observation.state[:6].astype(np.float64)
        steps = np.arange(1, 17)[:, None]
        actions = base + 3.0 * np.sin(0.3 * steps) * np.ones((1, 6))
        return SimpleNamespace(actions=actions.astype(np.float32), timings={'total': 0.03},
                               routing=_StubRouting())


def use_stub_engine_if_no_bundle(monkeypatch) -> None:
    """Swap in StubEngine only while the real demo bundle is absent."""
    if (BUNDLE / 'bundle.json').is_file():
        return
    import adamoe_ros.policy.node as node_module
    monkeypatch.setattr(node_module, '_load_engine', lambda p: StubEngine())
