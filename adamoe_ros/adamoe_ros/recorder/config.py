"""What the recorder records: topics, joint order, dataset location (shared by the node and the MCAP converter)."""
import os
from dataclasses import dataclass
from pathlib import Path

from adamoe_contract.robots import CameraProfile, load_robot_profile

# The defaults record an SO-101 (its robot profile); other robots set the names and topics as parameters.
SO101 = load_robot_profile('so101')
CAMERA_TYPES = ('image', 'compressed')
ACTION_TYPES = ('joint_state', 'joint_trajectory', 'float64_array')


class RecorderConfigError(ValueError):
    """The recorder configuration is inconsistent (named parameter and problem in the message)."""


@dataclass(frozen=True)
class CameraSpec:
    """One camera: dataset name (observation.images.<name>), topic and message kind."""

    name: str
    topic: str
    kind: str = 'image'  # 'image' (sensor_msgs/Image) or 'compressed' (sensor_msgs/CompressedImage)

    @classmethod
    def from_profile(cls, camera: CameraProfile) -> 'CameraSpec':
        """Return the recorder's view of a robot profile camera (its transport names the message kind)."""
        return cls(camera.name, camera.topic, 'compressed' if camera.transport == 'compressed' else 'image')


@dataclass(frozen=True)
class RecorderConfig:
    """Topic mapping and dataset settings; validated on construction."""

    cameras: tuple[CameraSpec, ...] = tuple(CameraSpec.from_profile(c) for c in SO101.cameras)
    joint_names: tuple[str, ...] = SO101.joint_names
    joint_states_topic: str = 'joint_states'
    extra_state_topic: str = SO101.extra_state_topic  # '' disables the extra state
    extra_state_names: tuple[str, ...] = SO101.extra_state_names
    action_type: str = 'joint_state'
    action_topic: str = 'leader/joint_states'
    instruction_topic: str = 'instruction'
    default_task: str = ''
    fps: int = 10
    tolerance_s: float = 0.05
    max_latency_s: float = 0.25
    repo_id: str = 'local/so101_teleop'
    dataset_root: str = ''  # '' -> $HF_LEROBOT_HOME/<repo_id>
    robot_type: str = SO101.name
    image_size: tuple[int, int] = (0, 0)  # (height, width); 0 keeps the camera's size
    vcodec: str = 'libsvtav1'

    def __post_init__(self) -> None:
        names = [c.name for c in self.cameras]
        if not names:
            raise RecorderConfigError('camera_names: at least one camera is needed (LeRobot video dataset)')
        if len(set(names)) != len(names):
            raise RecorderConfigError(f'camera_names: duplicates in {names}')
        for cam in self.cameras:
            if cam.kind not in CAMERA_TYPES:
                raise RecorderConfigError(f'camera_types: {cam.kind!r} for {cam.name} is not one of {CAMERA_TYPES}')
            if not cam.topic:
                raise RecorderConfigError(f'camera_topics: empty topic for camera {cam.name}')
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise RecorderConfigError(f'joint_names: must be unique and non-empty, got {list(self.joint_names)}')
        if self.extra_state_topic and not self.extra_state_names:
            raise RecorderConfigError('extra_state_names: needed when extra_state_topic is set')
        overlap = set(self.extra_state_names) & set(self.joint_names)
        if self.extra_state_topic and overlap:
            raise RecorderConfigError(f'extra_state_names: {sorted(overlap)} clash with joint_names')
        if self.action_type not in ACTION_TYPES:
            raise RecorderConfigError(f'action_type: {self.action_type!r} is not one of {ACTION_TYPES}')
        if not isinstance(self.fps, int) or self.fps <= 0:
            raise RecorderConfigError(f'fps: must be a positive integer (LeRobot stores int fps), got {self.fps!r}')
        # Above half a period a lagging stream's sample may serve two frames; above a period, frames would blur.
        if not 0 < self.tolerance_s <= 1.0 / self.fps + 1e-9:
            raise RecorderConfigError(
                f'tolerance_s: must be in (0, {1.0 / self.fps:.3f}] (one frame period), got {self.tolerance_s}')
        if self.max_latency_s < 0:
            raise RecorderConfigError(f'max_latency_s: must be >= 0, got {self.max_latency_s}')
        if len(self.image_size) != 2 or min(self.image_size) < 0 or (0 in self.image_size
                                                                      and any(self.image_size)):
            raise RecorderConfigError(f'image_size: need [height, width] both > 0, or [0, 0], got {self.image_size}')
        if '/' not in self.repo_id:
            raise RecorderConfigError(f'repo_id: must look like "owner/name", got {self.repo_id!r}')

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


# Parameter name -> description; the node declares these, the converter reads them from a params YAML.
PARAMETER_DESCRIPTIONS: dict[str, str] = {
    'camera_names': 'dataset camera names (observation.images.<name>)',
    'camera_topics': 'topic per camera',
    'camera_types': "per camera: 'image' (sensor_msgs/Image) or 'compressed' (CompressedImage)",
    'joint_names': 'joint order of observation.state and action',
    'joint_states_topic': 'sensor_msgs/JointState of the follower arm (observation.state)',
    'extra_state_topic': "std_msgs/Float64MultiArray appended to observation.state; '' disables",
    'extra_state_names': 'names of the extra state values',
    'action_type': 'joint_state (leader arm), joint_trajectory or float64_array',
    'action_topic': 'teleop action topic',
    'instruction_topic': 'std_msgs/String instruction: the LeRobot task',
    'default_task': 'task when no instruction arrived',
    'fps': 'dataset frame rate (integer)',
    'tolerance_s': 'max distance of every stream stamp from the frame time',
    'max_latency_s': 'decide a frame at the latest this long after its time',
    'repo_id': 'LeRobot repo id (owner/name)',
    'dataset_root': "dataset folder; '' = $HF_LEROBOT_HOME/<repo_id>",
    'robot_type': 'robot type stored in meta/info.json',
    'image_size': '[height, width] of stored images; [0, 0] keeps the camera size',
    'vcodec': 'video codec (LeRobot default libsvtav1)',
}


def default_parameters() -> dict:
    """ROS parameter defaults (flat, ROS-typed) equivalent to RecorderConfig()."""
    config = RecorderConfig()
    return {
        'camera_names': [c.name for c in config.cameras],
        'camera_topics': [c.topic for c in config.cameras],
        'camera_types': [c.kind for c in config.cameras],
        'joint_names': list(config.joint_names),
        'joint_states_topic': config.joint_states_topic,
        'extra_state_topic': config.extra_state_topic,
        'extra_state_names': list(config.extra_state_names),
        'action_type': config.action_type,
        'action_topic': config.action_topic,
        'instruction_topic': config.instruction_topic,
        'default_task': config.default_task,
        'fps': config.fps,
        'tolerance_s': config.tolerance_s,
        'max_latency_s': config.max_latency_s,
        'repo_id': config.repo_id,
        'dataset_root': config.dataset_root,
        'robot_type': config.robot_type,
        'image_size': list(config.image_size),
        'vcodec': config.vcodec,
    }


def config_from_parameters(params: dict) -> RecorderConfig:
    """Build a RecorderConfig from flat parameters (missing keys take the defaults; unknown keys are an error)."""
    unknown = sorted(set(params) - set(PARAMETER_DESCRIPTIONS))
    if unknown:
        raise RecorderConfigError(f'unknown recorder parameters {unknown}')
    p = {**default_parameters(), **params}
    names, topics, kinds = list(p['camera_names']), list(p['camera_topics']), list(p['camera_types'])
    if not len(names) == len(topics) == len(kinds):
        raise RecorderConfigError(f'camera_names, camera_topics and camera_types must have the same length '
                                  f'({len(names)}, {len(topics)}, {len(kinds)})')
    return RecorderConfig(
        cameras=tuple(CameraSpec(n, t, k) for n, t, k in zip(names, topics, kinds)),
        joint_names=tuple(p['joint_names']), joint_states_topic=p['joint_states_topic'],
        extra_state_topic=p['extra_state_topic'], extra_state_names=tuple(p['extra_state_names']),
        action_type=p['action_type'], action_topic=p['action_topic'], instruction_topic=p['instruction_topic'],
        default_task=p['default_task'], fps=p['fps'], tolerance_s=float(p['tolerance_s']),
        max_latency_s=float(p['max_latency_s']), repo_id=p['repo_id'], dataset_root=p['dataset_root'],
        robot_type=p['robot_type'], image_size=tuple(int(v) for v in p['image_size']), vcodec=p['vcodec'])
