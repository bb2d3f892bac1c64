"""Small shared ROS helpers: the project's QoS profiles, time/stamp conversions and a blocking service call."""

import threading
from typing import Any

from builtin_interfaces.msg import Duration as DurationMsg
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

NS_PER_S = 1_000_000_000

# Cameras and joint states: best effort keeps the newest sample moving; a best-effort subscriber
# also matches reliable publishers, so it is the safe choice on the receiving side.
SENSOR_QOS: QoSProfile = qos_profile_sensor_data

# The same for a subscriber that must keep every sample (the recorder): a deeper queue rides out a few
# frames of transport jitter.
BUFFERED_SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

# The task instruction: a late joiner must get the current task, hence transient local.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# Commands, chunks and status: every message matters, a small queue bounds latency.
RELIABLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


def stamp_to_ns(stamp: TimeMsg | DurationMsg) -> int:
    """Return a builtin_interfaces/Time (or Duration) as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> TimeMsg:
    """Return integer nanoseconds as a builtin_interfaces/Time (negative values clamp to 0)."""
    ns = max(int(ns), 0)
    return TimeMsg(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def call_service(client: Any, request: Any, timeout: float = 10.0) -> Any:
    """Call a service from outside the executor thread and wait for the answer."""
    if not client.wait_for_service(timeout_sec=timeout):
        raise TimeoutError(f'service {client.srv_name} not available')
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        client.remove_pending_request(future)  # a server that died mid-call never answers: do not keep it
        raise TimeoutError(f'service {client.srv_name} did not answer in {timeout} s')
    return future.result()
