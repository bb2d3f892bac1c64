"""Every adamoe_ros_interfaces message and a sensor_msgs/Image round-trip between two processes over DDS."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.ros_image import image_to_numpy, numpy_to_image
from adamoe_ros_interfaces.msg import ActionChunk, ExpertUsage, PolicyStatus, RecorderStatus
from adamoe_ros_interfaces.srv import GetTaskStatus, ResetSim

ECHO = Path(__file__).parent / 'support' / 'echo_node.py'


def sample_messages() -> dict[str, object]:
    """One fully populated message of each type, with values that would expose a field mix-up."""
    chunk = ActionChunk(
        joint_names=['a', 'b'],
        horizon=3,
        action_dim=2,
        dt=0.1,
        actions=np.arange(6, dtype=np.float32).tolist(),
        chunk_index=7,
        latency=0.012,
        inference_time=0.01,
        bundle_id='abc123',
        prefix_steps=5,
    )
    chunk.header.stamp.sec, chunk.header.stamp.nanosec = 12, 345
    usage = ExpertUsage(
        bundle_id='abc123',
        chunk_index=7,
        routing_mode='adamoe',
        num_layers=2,
        num_experts=3,
        top_k=1,
        layer_indices=[0, 1],
        token_fraction=[0.5, 0.25, 0.25, 1.0, 0.0, 0.0],
        mean_weight=[0.3, 0.2, 0.1, 0.6, 0.0, 0.0],
    )
    status = PolicyStatus(
        state='active',
        execution_mode='rtc',
        dry_run=True,
        commanding=False,
        last_inference_time=0.02,
        p95_inference_time=0.03,
        chunks_published=5,
        queue_length=9,
        rejected_messages=2,
        stale_events=1,
        stale_inputs=['cameras/front'],
        message='stale',
    )
    rec = RecorderStatus(
        recording=True,
        episode_index=3,
        frame_count=42,
        dropped_frames=1,
        saved_episodes=3,
        task='pick up the cube',
        dataset_root='/tmp/ds',
        fps=10.0,
        message='',
    )
    rgb = (np.arange(4 * 5 * 3) % 251).astype(np.uint8).reshape(4, 5, 3)
    return {
        'adamoe_ros_interfaces/msg/ActionChunk': chunk,
        'adamoe_ros_interfaces/msg/ExpertUsage': usage,
        'adamoe_ros_interfaces/msg/PolicyStatus': status,
        'adamoe_ros_interfaces/msg/RecorderStatus': rec,
        'sensor_msgs/msg/Image': numpy_to_image(rgb, 'rgb8'),
    }


@pytest.fixture
def ros_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('roundtrip_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = ExecutorThread(executor).start()
    yield node
    spinner.stop()  # before destroying: a spinning executor still adds the node's entities
    node.destroy_node()
    rclpy.shutdown(context=context)


def test_messages_round_trip_between_processes(ros_node):
    samples = sample_messages()
    child = subprocess.Popen([sys.executable, str(ECHO), *samples])
    try:
        received: dict[str, object] = {}
        ready = threading.Event()
        ros_node.create_subscription(String, 'echo_ready', lambda _: ready.set(), 10)
        pubs = {}
        for name, msg in samples.items():
            topic = name.replace('/', '_')
            pubs[name] = ros_node.create_publisher(type(msg), f'in/{topic}', 10)
            ros_node.create_subscription(type(msg), f'out/{topic}', lambda m, n=name: received.setdefault(n, m), 10)
        assert ready.wait(30), 'echo process never came up'
        deadline = time.monotonic() + 30
        while len(received) < len(samples) and time.monotonic() < deadline:
            for name, msg in samples.items():
                if name not in received:
                    pubs[name].publish(msg)
            time.sleep(0.2)
        assert set(received) == set(samples)
        for name, msg in samples.items():
            assert received[name] == msg, name
        img = image_to_numpy(received['sensor_msgs/msg/Image'])
        np.testing.assert_array_equal(img, image_to_numpy(samples['sensor_msgs/msg/Image']))
    finally:
        child.terminate()
        assert child.wait(timeout=20) == 0


def test_services_have_documented_fields():
    req, res = ResetSim.Request(seed=5), ResetSim.Response(success=True, seed=5, message='ok')
    assert (req.seed, res.seed, res.success) == (5, 5, True)
    status = GetTaskStatus.Response(success=False, cube_lift=0.01, distance_to_goal=0.2, episode_time=1.5)
    assert status.cube_lift == pytest.approx(0.01)
