"""adamoe_run: the sim-in-the-loop stack from a YAML file, in one process on one executor."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from process_support import stop
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray

from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.ros_env import RELIABLE_QOS
from adamoe_ros.runner import load_specs
from adamoe_ros_interfaces.msg import ActionChunk

RUNNER_YAML = Path(__file__).resolve().parents[1] / 'launch' / 'sim_policy.runner.yaml'


def test_runner_yaml_names_known_executables_and_existing_files():
    specs = load_specs(RUNNER_YAML)
    assert [s.executable for s in specs] == ['sim_bridge_node', 'scripted_expert', 'policy_node']
    assert all(Path(s.params_file).is_file() for s in specs if s.params_file)


def test_unknown_executable_is_a_clear_error(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('nodes:\n  - executable: no_such_node\n')
    with pytest.raises(ValueError, match='no_such_node'):
        load_specs(bad)


@pytest.mark.slow
def test_adamoe_run_drives_the_sim_with_the_policy_and_exits_cleanly():
    proc = subprocess.Popen(
        [sys.executable, '-m', 'adamoe_ros.runner', str(RUNNER_YAML)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('runner_probe', context=context)
    chunks, commands = [], []
    node.create_subscription(ActionChunk, 'policy/action_chunk', chunks.append, RELIABLE_QOS)
    node.create_subscription(Float64MultiArray, 'forward_position_controller/commands', commands.append, RELIABLE_QOS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = ExecutorThread(executor).start()
    try:
        deadline = time.monotonic() + 60
        while (len(chunks) < 2 or len(commands) < 10) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert len(chunks) >= 2 and len(commands) >= 10, (len(chunks), len(commands))
        assert all(len(c.data) == 6 for c in commands)
    finally:
        code, output = stop(proc, signal.SIGINT)
        spinner.stop()  # before destroying: a spinning executor still adds the node's entities
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert code == 0, output[-3000:]
