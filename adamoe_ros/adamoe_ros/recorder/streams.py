"""Turn the recorded ROS messages into (stamp, value) samples for the aligner (live node and MCAP converter)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from adamoe_ros.joint_state import JointStateError, JointStateMatcher
from adamoe_ros.recorder.config import RecorderConfig
from adamoe_ros.ros_env import stamp_to_ns


class StreamValueError(ValueError):
    """A message cannot be used (missing joints, wrong length, non-finite values)."""


@dataclass(frozen=True)
class StreamSource:
    """A topic the recorder reads: aligner stream name, message type and how to get (stamp, value) from it."""

    stream: str  # aligner stream name, or 'instruction' (not aligned: it is the episode task)
    topic: str
    msg_type: type
    extract: Callable[[Any], Any]  # message -> value (raises StreamValueError)
    has_header: bool


def header_stamp_ns(msg: Any, has_header: bool) -> int:
    """Header stamp, 0 when there is none (Float64MultiArray has no header; JTC commands often leave it 0)."""
    return max(stamp_to_ns(msg.header.stamp), 0) if has_header else 0


def sample_stamp_ns(msg: Any, has_header: bool, receive_ns: int) -> int:
    """Header stamp when set, else the receive time."""
    return header_stamp_ns(msg, has_header) or receive_ns


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise StreamValueError(f'{what} contains non-finite values {values.tolist()}')
    return values


def joint_positions(msg: JointState, matcher: JointStateMatcher, what: str) -> np.ndarray:
    """Positions of the matcher's joints (in its order) from a JointState, float32."""
    try:
        return matcher.positions(msg).astype(np.float32)
    except JointStateError as err:
        raise StreamValueError(f'{what} {err}') from None


def trajectory_positions(msg: JointTrajectory, joint_names: Sequence[str], what: str) -> np.ndarray:
    """Positions of the first point of a JointTrajectory (the teleop setpoint), in `joint_names` order."""
    if not msg.points:
        raise StreamValueError(f'{what} has no points')
    index = {name: i for i, name in enumerate(msg.joint_names)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise StreamValueError(f'{what} lacks joints {missing} (has {list(msg.joint_names)})')
    positions = msg.points[0].positions
    if len(positions) != len(msg.joint_names):
        raise StreamValueError(f'{what} point has {len(positions)} positions for {len(msg.joint_names)} joints')
    return _finite(np.array([positions[index[name]] for name in joint_names], np.float32), what)


def array_values(msg: Float64MultiArray, size: int, what: str) -> np.ndarray:
    """Return the data of a Float64MultiArray, which must hold exactly `size` values, as float32."""
    if len(msg.data) != size:
        raise StreamValueError(f'{what} has {len(msg.data)} values, expected {size}')
    return _finite(np.asarray(msg.data, np.float32), what)


def stream_sources(config: RecorderConfig) -> list[StreamSource]:
    """Every topic to read for `config`, the instruction included."""
    joints = list(config.joint_names)
    sources = [
        StreamSource(
            f'camera:{cam.name}',
            cam.topic,
            CompressedImage if cam.kind == 'compressed' else Image,
            lambda msg: msg,
            True,
        )  # decoded only for the frames kept
        for cam in config.cameras
    ]
    # Other joints may be in the messages (a follower arm's extra axes): the recorder keeps the named ones.
    state_matcher = JointStateMatcher(joints, allow_extra_joints=True)
    sources.append(
        StreamSource(
            'joint_states',
            config.joint_states_topic,
            JointState,
            lambda msg: joint_positions(msg, state_matcher, config.joint_states_topic),
            True,
        )
    )
    if config.extra_state_topic:
        size = len(config.extra_state_names)
        sources.append(
            StreamSource(
                'extra_state',
                config.extra_state_topic,
                Float64MultiArray,
                lambda msg: array_values(msg, size, config.extra_state_topic),
                False,
            )
        )
    what = config.action_topic
    if config.action_type == 'joint_state':
        action_matcher = JointStateMatcher(joints, allow_extra_joints=True)
        sources.append(
            StreamSource('action', what, JointState, lambda msg: joint_positions(msg, action_matcher, what), True)
        )
    elif config.action_type == 'joint_trajectory':
        sources.append(
            StreamSource('action', what, JointTrajectory, lambda msg: trajectory_positions(msg, joints, what), True)
        )
    else:
        sources.append(
            StreamSource('action', what, Float64MultiArray, lambda msg: array_values(msg, len(joints), what), False)
        )
    sources.append(StreamSource('instruction', config.instruction_topic, String, lambda msg: msg.data, False))
    return sources
