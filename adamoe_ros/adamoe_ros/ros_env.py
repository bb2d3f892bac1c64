"""Small shared ROS helpers: the project's QoS profiles, time/stamp conversions and node entry points."""
from collections.abc import Callable

import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from adamoe_ros.parameters import ParameterError

NS_PER_S = 1_000_000_000

# Cameras and joint states: best effort keeps the newest sample moving; a best-effort subscriber
# also matches reliable publishers, so it is the safe choice on the receiving side.
SENSOR_QOS: QoSProfile = qos_profile_sensor_data

# The task instruction: a late joiner must get the current task, hence transient local.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Commands, chunks and status: every message matters, a small queue bounds latency.
RELIABLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def stamp_to_ns(stamp: TimeMsg) -> int:
    """Return a builtin_interfaces/Time as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> TimeMsg:
    """Return integer nanoseconds as a builtin_interfaces/Time (negative values clamp to 0)."""
    ns = max(int(ns), 0)
    return TimeMsg(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def stamp_to_sec(stamp: TimeMsg) -> float:
    """Return a builtin_interfaces/Time in seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_duration_fields(seconds: float) -> tuple[int, int]:
    """Split non-negative seconds into (sec, nanosec) for Duration messages."""
    ns = max(int(round(seconds * NS_PER_S)), 0)
    return ns // NS_PER_S, ns % NS_PER_S


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Entry-point body of a plain node: init, spin until Ctrl-C or shutdown, destroy the node.

    A parameter the node refuses ends the process with that one message (exit status 1), no traceback.
    """
    try:
        with rclpy.init(args=args):
            node = make_node()
            try:
                rclpy.spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterError as error:
        raise SystemExit(str(error)) from None
