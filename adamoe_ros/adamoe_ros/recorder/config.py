"""What the recorder records: topics, joint order, dataset location (shared by the node and the MCAP converter)."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from adamoe_contract.robots import load_robot_profile
from adamoe_ros.parameters import ParameterError, ParameterTable, param

# The defaults record an SO-101 (its robot profile); other robots set the names and topics as parameters.
SO101 = load_robot_profile('so101')
CAMERA_TYPES = ('image', 'compressed')
ACTION_TYPES = ('joint_state', 'joint_trajectory', 'float64_array')


class RecorderConfigError(ParameterError):
    """The recorder configuration is inconsistent (named parameter and problem in the message)."""


@dataclass(frozen=True)
class CameraSpec:
    """One camera: dataset name (observation.images.<name>), topic and message kind."""

    name: str
    topic: str
    kind: str = 'image'  # 'image' (sensor_msgs/Image) or 'compressed' (sensor_msgs/CompressedImage)


@dataclass(frozen=True)
class RecorderConfig(ParameterTable):
    """The recorder node's parameters (its one table, see adamoe_ros.parameters), checked on construction.

    The node reads them once, at construction (read-only); mcap_to_lerobot reads the same ones from a params file.
    """

    ERROR: ClassVar[type[ValueError]] = RecorderConfigError

    camera_names: tuple[str, ...] = param(SO101.camera_names, 'dataset camera names (observation.images.<name>)')
    camera_topics: tuple[str, ...] = param(tuple(c.topic for c in SO101.cameras), 'topic per camera')
    camera_types: tuple[str, ...] = param(
        tuple('compressed' if c.transport == 'compressed' else 'image' for c in SO101.cameras),
        "per camera: 'image' (sensor_msgs/Image) or 'compressed' (CompressedImage)",
        choices=CAMERA_TYPES,
    )
    joint_names: tuple[str, ...] = param(SO101.joint_names, 'joint order of observation.state and action')
    joint_states_topic: str = param('joint_states', 'sensor_msgs/JointState of the follower arm (observation.state)')
    extra_state_topic: str = param(
        SO101.extra_state_topic, "std_msgs/Float64MultiArray appended to observation.state; '' disables"
    )
    extra_state_names: tuple[str, ...] = param(SO101.extra_state_names, 'names of the extra state values')
    action_type: str = param(
        'joint_state', 'joint_state (leader arm), joint_trajectory or float64_array', choices=ACTION_TYPES
    )
    action_topic: str = param('leader/joint_states', 'teleop action topic')
    instruction_topic: str = param('instruction', 'std_msgs/String instruction: the LeRobot task')
    default_task: str = param('', 'task when no instruction arrived')
    fps: int = param(10, 'dataset frame rate (integer: LeRobot stores int fps)', ge=1)
    tolerance_s: float = param(
        0.05, 'max distance of every stream stamp from the frame time (at most one frame period)', gt=0.0
    )
    max_latency_s: float = param(0.25, 'decide a frame at the latest this long after its time', ge=0.0)
    repo_id: str = param('local/so101_teleop', 'LeRobot repo id (owner/name)')
    dataset_root: str = param('', "dataset folder; '' = $HF_LEROBOT_HOME/<repo_id>")
    robot_type: str = param(SO101.name, 'robot type stored in meta/info.json')
    image_size: tuple[int, ...] = param((0, 0), '[height, width] of stored images; [0, 0] keeps the camera size', ge=0)
    vcodec: str = param('libsvtav1', 'video codec (LeRobot default libsvtav1)')
    streaming_encoding: bool = param(
        True, 'encode videos while recording (quick save, no PNG staging); false: stage PNGs, encode them on save'
    )
    parallel_encoding: bool = param(False, 'without streaming_encoding: encode cameras in parallel processes on save')
    write_queue_frames: int = param(
        60, 'frames waiting for the writer thread at most (bounds memory); a frame beyond is dropped and counted', ge=1
    )
    status_rate_hz: float = param(2.0, 'recorder/status publish rate', gt=0.0)

    def check(self) -> None:
        """Check the relations between parameters; RecorderConfigError names the parameter."""
        names = self.camera_names
        if not len(names) == len(self.camera_topics) == len(self.camera_types):
            raise RecorderConfigError(
                f'camera_names, camera_topics and camera_types must have the same length '
                f'({len(names)}, {len(self.camera_topics)}, {len(self.camera_types)})'
            )
        if not names:
            raise RecorderConfigError('camera_names: at least one camera is needed (LeRobot video dataset)')
        if len(set(names)) != len(names):
            raise RecorderConfigError(f'camera_names: duplicates in {list(names)}')
        for name, topic in zip(names, self.camera_topics):
            if not topic:
                raise RecorderConfigError(f'camera_topics: empty topic for camera {name}')
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise RecorderConfigError(f'joint_names: must be unique and non-empty, got {list(self.joint_names)}')
        if self.extra_state_topic and not self.extra_state_names:
            raise RecorderConfigError('extra_state_names: needed when extra_state_topic is set')
        overlap = set(self.extra_state_names) & set(self.joint_names)
        if self.extra_state_topic and overlap:
            raise RecorderConfigError(f'extra_state_names: {sorted(overlap)} clash with joint_names')
        # Above half a period a lagging stream's sample may serve two frames; above a period, frames would blur.
        if not self.tolerance_s <= 1.0 / self.fps + 1e-9:
            raise RecorderConfigError(
                f'tolerance_s: must be in (0, {1.0 / self.fps:.3f}] (one frame period), got {self.tolerance_s}'
            )
        if len(self.image_size) != 2 or (0 in self.image_size and any(self.image_size)):
            raise RecorderConfigError(
                f'image_size: need [height, width] both > 0, or [0, 0], got {list(self.image_size)}'
            )
        if '/' not in self.repo_id:
            raise RecorderConfigError(f'repo_id: must look like "owner/name", got {self.repo_id!r}')

    @property
    def cameras(self) -> tuple[CameraSpec, ...]:
        """The cameras: name, topic and message kind."""
        return tuple(CameraSpec(*camera) for camera in zip(self.camera_names, self.camera_topics, self.camera_types))

    @property
    def state_names(self) -> list[str]:
        """observation.state names: the joints, then the extra state."""
        return list(self.joint_names) + (list(self.extra_state_names) if self.extra_state_topic else [])

    @property
    def stream_names(self) -> list[str]:
        """Names the aligner samples: one per camera, joint states, the extra state, the action."""
        streams = [f'camera:{c.name}' for c in self.cameras] + ['joint_states']
        if self.extra_state_topic:
            streams.append('extra_state')
        return streams + ['action']

    def resolved_root(self) -> Path:
        """Dataset folder: dataset_root, else $HF_LEROBOT_HOME/<repo_id> (LeRobot's default)."""
        if self.dataset_root:
            return Path(self.dataset_root).expanduser()
        home = os.environ.get('HF_LEROBOT_HOME') or Path('~/.cache/huggingface/lerobot').expanduser()
        return Path(home) / self.repo_id
