"""Child process for cross-process tests: republishes every message of the given types from in/<T> to out/<T>."""
import importlib
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import String


def load_type(name: str) -> type:
    """Import 'pkg/msg/Type' as a class."""
    pkg, kind, cls = name.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), cls)


def main() -> None:
    rclpy.init()
    node = Node('echo')
    ready = node.create_publisher(String, 'echo_ready', 10)
    keep = []
    for name in sys.argv[1:]:
        msg_type = load_type(name)
        topic = name.replace('/', '_')
        pub = node.create_publisher(msg_type, f'out/{topic}', 10)
        keep.append(node.create_subscription(msg_type, f'in/{topic}', pub.publish, 10))
    node.create_timer(0.1, lambda: ready.publish(String(data='ready')))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
