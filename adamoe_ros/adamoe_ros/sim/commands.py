"""Joint command handling of the sim bridge: trajectory interpolation, validation and rate limiting."""

from dataclasses import dataclass

import numpy as np
from trajectory_msgs.msg import JointTrajectory

from adamoe_ros.ros_env import NS_PER_S, stamp_to_ns


class CommandError(ValueError):
    """A command message that cannot be executed (unknown joint, NaN, bad timing); nothing was applied."""


@dataclass(frozen=True)
class ActiveTrajectory:
    """Piecewise-linear joint trajectory over absolute sim times (ns), in the bridge's joint order."""

    times_ns: np.ndarray  # (k,) strictly increasing
    positions: np.ndarray  # (k, n_joints)

    def sample(self, now_ns: int) -> np.ndarray:
        """Return positions at now_ns; before the first / after the last point the end points hold."""
        return np.array(
            [np.interp(now_ns, self.times_ns, self.positions[:, j]) for j in range(self.positions.shape[1])]
        )

    def finished(self, now_ns: int) -> bool:
        """Tell whether now_ns is past the last point."""
        return now_ns >= self.times_ns[-1]


def validate_positions(values: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Check count and finiteness, then clamp to limits (n, 2); raises CommandError."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (limits.shape[0],):
        raise CommandError(f'expected {limits.shape[0]} positions, got {values.size}')
    if not np.all(np.isfinite(values)):
        raise CommandError(f'non-finite position in {values.tolist()}')
    return np.clip(values, limits[:, 0], limits[:, 1])


def trajectory_from_msg(
    msg: JointTrajectory, joint_names: tuple[str, ...], current: np.ndarray, limits: np.ndarray, now_ns: int
) -> ActiveTrajectory:
    """Turn a JointTrajectory into an ActiveTrajectory starting from the current targets at now_ns.

    Like joint_trajectory_controller: time_from_start counts from header.stamp, or from receipt when the
    stamp is zero; joints are matched by name and joints left out keep their current target; points
    already in the past are skipped and the first future point is reached from the current targets.
    """
    unknown = [name for name in msg.joint_names if name not in joint_names]
    if unknown or not msg.joint_names:
        raise CommandError(
            f'unknown joints {unknown} (known: {list(joint_names)})' if unknown else 'trajectory names no joints'
        )
    if len(set(msg.joint_names)) != len(msg.joint_names):
        raise CommandError(f'duplicate joint names {list(msg.joint_names)}')
    if not msg.points:
        raise CommandError('trajectory has no points')
    columns = [joint_names.index(name) for name in msg.joint_names]
    start_ns = stamp_to_ns(msg.header.stamp) or now_ns
    times, rows = [], []
    for i, point in enumerate(msg.points):
        if len(point.positions) != len(columns):
            raise CommandError(f'point {i} has {len(point.positions)} positions for {len(columns)} joints')
        offset_ns = stamp_to_ns(point.time_from_start)
        if times and start_ns + offset_ns <= times[-1]:
            raise CommandError(f'time_from_start of point {i} does not increase')
        row = current.copy()
        row[columns] = point.positions
        times.append(start_ns + offset_ns)
        rows.append(validate_positions(row, limits))
    future = [i for i, t in enumerate(times) if t > now_ns]
    if not future:
        if times[-1] < now_ns:  # a stale trajectory is refused, as joint_trajectory_controller does
            raise CommandError(f'trajectory ends {(now_ns - times[-1]) / NS_PER_S:.3f} s in the past')
        return ActiveTrajectory(times_ns=np.array([now_ns], dtype=np.int64), positions=rows[-1][None, :])
    times_ns = np.array([now_ns] + [times[i] for i in future], dtype=np.int64)
    positions = np.vstack([current] + [rows[i] for i in future])
    return ActiveTrajectory(times_ns=times_ns, positions=positions)


def limit_step(previous: np.ndarray, desired: np.ndarray, max_delta: float) -> np.ndarray:
    """Move from previous toward desired by at most max_delta per joint (servo speed limit)."""
    if max_delta <= 0.0:
        return desired.copy()
    return previous + np.clip(desired - previous, -max_delta, max_delta)
