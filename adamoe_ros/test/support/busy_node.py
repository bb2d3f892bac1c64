"""Child process for the shutdown tests: a node that spends nearly all its time publishing from a timer.

A stop signal then almost always lands inside a publishing callback, which is where a context shut down under a
running callback fails.
"""

import time

from rclpy.node import Node
from std_msgs.msg import String

from adamoe_ros.node_main import run_node


def make_busy_node() -> Node:
    """A node whose 1 kHz timer publishes 10 kB strings on `busy` for 5 ms per tick."""
    node = Node('busy')
    pub = node.create_publisher(String, 'busy', 10)
    payload = String(data='x' * 10_000)

    def publish_for_5_ms() -> None:
        end = time.monotonic() + 0.005
        while time.monotonic() < end:
            pub.publish(payload)

    node.create_timer(0.001, publish_for_5_ms)
    node.get_logger().info('busy node up')
    return node


if __name__ == '__main__':
    raise SystemExit(run_node(make_busy_node, args=[]))
