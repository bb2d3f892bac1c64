"""Child process for cross-process tests: republishes every message of the given types from in/<T> to out/<T>."""

import importlib
import sys

from rclpy.node import Node
from std_msgs.msg import String

from adamoe_ros.node_main import run_node


def load_type(name: str) -> type:
    """Import 'pkg/msg/Type' as a class."""
    pkg, kind, cls = name.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), cls)


def make_echo_node() -> Node:
    """A node that republishes in/<T> on out/<T> for each type on the command line and says when it is up."""
    node = Node('echo')
    ready = node.create_publisher(String, 'echo_ready', 10)
    for name in sys.argv[1:]:
        msg_type = load_type(name)
        topic = name.replace('/', '_')
        pub = node.create_publisher(msg_type, f'out/{topic}', 10)
        node.create_subscription(msg_type, f'in/{topic}', pub.publish, 10)
    node.create_timer(0.1, lambda: ready.publish(String(data='ready')))
    return node


def main() -> int:
    return run_node(make_echo_node, args=[])


if __name__ == '__main__':
    raise SystemExit(main())
