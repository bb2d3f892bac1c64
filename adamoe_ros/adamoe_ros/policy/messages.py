"""The messages the policy node publishes, built by pure functions from plain values."""

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from adamoe_ros.engine import RoutingStats
from adamoe_ros.ros_env import NS_PER_S, ns_to_stamp
from adamoe_ros_interfaces.msg import ActionChunk, ExpertUsage, PolicyStatus


def chunk_message(
    actions: np.ndarray,
    start_ns: int,
    dt_ns: int,
    joint_names: list[str],
    index: int,
    latency_s: float,
    inference_s: float,
    bundle_id: str,
    prefix_steps: int,
) -> ActionChunk:
    """Build a chunk stamped with its observation time, the base of its action times (i at start + i dt)."""
    msg = ActionChunk()
    msg.header.stamp = ns_to_stamp(start_ns)
    msg.joint_names = joint_names
    msg.horizon, msg.action_dim = actions.shape
    msg.dt = dt_ns / NS_PER_S
    msg.actions = actions.astype(np.float32).ravel().tolist()
    msg.chunk_index = index
    msg.latency = latency_s
    msg.inference_time = inference_s
    msg.bundle_id = bundle_id
    msg.prefix_steps = prefix_steps
    return msg


def usage_message(routing: RoutingStats, stamp_ns: int, index: int, bundle_id: str) -> ExpertUsage:
    """Build the expert usage of one chunk: token fraction and mean weight per (layer, expert)."""
    fraction = np.asarray(routing.token_fraction, dtype=np.float32)
    weight = np.asarray(routing.mean_weight, dtype=np.float32)
    msg = ExpertUsage()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.bundle_id = bundle_id
    msg.chunk_index = index
    msg.routing_mode = str(routing.mode)
    msg.num_layers, msg.num_experts = fraction.shape if fraction.ndim == 2 else (0, 0)
    msg.top_k = int(routing.top_k)
    msg.layer_indices = [int(i) for i in routing.layer_indices]
    msg.token_fraction = fraction.ravel().tolist()
    msg.mean_weight = weight.ravel().tolist()
    return msg


def trajectory_message(
    now_ns: int, times_ns: np.ndarray, positions: np.ndarray, joint_names: list[str]
) -> JointTrajectory:
    """Build a JointTrajectory of future targets starting now, for a joint_trajectory_controller."""
    msg = JointTrajectory()
    msg.header.stamp = ns_to_stamp(now_ns)
    msg.joint_names = joint_names
    for t, position in zip(times_ns, positions):
        point = JointTrajectoryPoint(positions=[float(v) for v in position])
        offset = int(t - now_ns)
        point.time_from_start.sec, point.time_from_start.nanosec = offset // NS_PER_S, offset % NS_PER_S
        msg.points.append(point)
    return msg


def array_command(command: np.ndarray) -> Float64MultiArray:
    """Build a position command for a forward_position_controller."""
    return Float64MultiArray(data=[float(v) for v in command])


def joint_command(command: np.ndarray, joint_names: list[str], stamp_ns: int) -> JointState:
    """Build a position command as a JointState, stamped with the control time it was computed for."""
    msg = JointState(name=joint_names, position=[float(v) for v in command])
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg


def diagnostics_message(
    status: PolicyStatus, name: str, hardware_id: str, problem: str, active: bool
) -> DiagnosticArray:
    """Build the /diagnostics entry of a status: ERROR on a problem, WARN on stale inputs while active, else OK."""
    diag = DiagnosticStatus(name=name, hardware_id=hardware_id)
    if problem:
        diag.level, diag.message = DiagnosticStatus.ERROR, problem
    elif status.stale_inputs and active:
        diag.level, diag.message = DiagnosticStatus.WARN, f'stale inputs: {", ".join(status.stale_inputs)}'
    else:
        diag.level, diag.message = DiagnosticStatus.OK, status.state
    diag.values = [
        KeyValue(key=k, value=str(v))
        for k, v in (
            ('state', status.state),
            ('commanding', status.commanding),
            ('chunks', status.chunks_published),
            ('p95_inference_time', f'{status.p95_inference_time:.4f}'),
            ('rejected_messages', status.rejected_messages),
            ('stale_events', status.stale_events),
        )
    ]
    return DiagnosticArray(header=status.header, status=[diag])
