"""Robot profiles: each robot's facts written once (joints, limits, cameras, extra state, default instruction).

As ros2_control takes limits from one robot description, the sim, the nodes' defaults, the evaluation and the
training helpers read these facts from one YAML file per robot in `robots/` (a shipped name such as 'so101') or
from any YAML file of the same layout (a path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROBOTS_DIR = Path(__file__).resolve().parent / 'robots'
CAMERA_TRANSPORTS = ('raw', 'compressed')


def camera_topic(camera: str, transport: str = 'raw') -> str:
    """Return the conventional topic of a camera no profile places elsewhere (the image_transport naming)."""
    if transport not in CAMERA_TRANSPORTS:
        raise ValueError(f'camera {camera}: transport {transport!r} not in {CAMERA_TRANSPORTS}')
    return f'cameras/{camera}/image_raw' + ('/compressed' if transport == 'compressed' else '')


class RobotProfileError(ValueError):
    """A robot profile cannot be found or is inconsistent (the file and the problem are in the message)."""


@dataclass(frozen=True)
class CameraProfile:
    """One camera: the name bundles and datasets use, its default topic and transport."""

    name: str
    topic: str
    transport: str = 'raw'  # 'raw' (sensor_msgs/Image) or 'compressed' (sensor_msgs/CompressedImage)


@dataclass(frozen=True)
class RobotProfile:
    """The facts of one robot; joints in command order (the order a forward position controller expects)."""

    name: str
    joint_names: tuple[str, ...]
    lower_limits: tuple[float, ...]  # rad (m for prismatic joints)
    upper_limits: tuple[float, ...]
    max_velocity: tuple[float, ...]  # rad/s: bound on each command step
    cameras: tuple[CameraProfile, ...]
    extra_state_names: tuple[str, ...] = ()  # state after the joints (e.g. privileged sim state)
    extra_state_topic: str = ''  # std_msgs/Float64MultiArray carrying them
    default_instruction: str = ''
    description: str = ''

    def __post_init__(self) -> None:
        """Refuse an inconsistent profile: every error names the profile and the problem."""
        problems = []
        joints = self.joint_names
        if not joints or len(set(joints)) != len(joints) or not all(joints):
            problems.append(f'joint names must be unique and non-empty, got {list(joints)}')
        for field in ('lower_limits', 'upper_limits', 'max_velocity'):
            values = getattr(self, field)
            if len(values) != len(joints):
                problems.append(f'{field} has {len(values)} values for {len(joints)} joints')
            elif not all(math.isfinite(v) for v in values):
                problems.append(f'{field} must be finite, got {list(values)}')
        if not problems:
            below = [n for n, lo, hi in zip(joints, self.lower_limits, self.upper_limits) if not lo < hi]
            if below:
                problems.append(f'lower limit must be below upper limit for {below}')
            if any(v <= 0 for v in self.max_velocity):
                problems.append(f'max_velocity must be positive, got {list(self.max_velocity)}')
        names = self.camera_names
        if len(set(names)) != len(names) or not all(names):
            problems.append(f'camera names must be unique and non-empty, got {list(names)}')
        for camera in self.cameras:
            if camera.transport not in CAMERA_TRANSPORTS:
                problems.append(f'camera {camera.name}: transport {camera.transport!r} not in {CAMERA_TRANSPORTS}')
            if not camera.topic:
                problems.append(f'camera {camera.name}: empty topic')
        extra = self.extra_state_names
        if len(set(extra)) != len(extra) or set(extra) & set(joints):
            problems.append(f'extra state names must be unique and differ from the joints, got {list(extra)}')
        if bool(extra) != bool(self.extra_state_topic):
            problems.append('extra_state needs both names and a topic, or neither')
        if problems:
            raise RobotProfileError(f'robot profile {self.name!r}: ' + '; '.join(problems))

    @property
    def camera_names(self) -> tuple[str, ...]:
        """Names of the cameras, in profile order."""
        return tuple(camera.name for camera in self.cameras)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the state vector: the joints, then the extra state."""
        return self.joint_names + self.extra_state_names

    def camera(self, name: str) -> CameraProfile | None:
        """Return the profile's entry for a camera, None for a camera it does not list."""
        return next((camera for camera in self.cameras if camera.name == name), None)

    def camera_transport(self, camera: str) -> str:
        """Return the transport this profile streams the camera with ('raw' for a camera it does not list)."""
        listed = self.camera(camera)
        return listed.transport if listed else 'raw'

    def camera_topic(self, camera: str, transport: str | None = None) -> str:
        """Return the profile's topic when it streams the camera with this transport, else the conventional one."""
        transport = transport or self.camera_transport(camera)
        listed = self.camera(camera)
        if listed and listed.transport == transport:
            return listed.topic
        return camera_topic(camera, transport)


def shipped_robot_profiles() -> list[str]:
    """Names of the profiles shipped with this package."""
    return sorted(path.stem for path in ROBOTS_DIR.glob('*.yaml'))


def load_robot_profile(name_or_path: str | Path) -> RobotProfile:
    """Load a shipped profile by name ('so101') or a profile YAML file by path; RobotProfileError says why not."""
    text = str(name_or_path)
    if not text:
        raise RobotProfileError(f'no robot profile given: name one of {shipped_robot_profiles()} or a YAML path')
    is_path = isinstance(name_or_path, Path) or '/' in text or text.endswith(('.yaml', '.yml'))
    path = Path(text).expanduser() if is_path else ROBOTS_DIR / f'{text}.yaml'
    if not path.is_file():
        raise RobotProfileError(
            f'robot profile {text!r} not found'
            + ('' if is_path else f': shipped profiles are {shipped_robot_profiles()}, or give a YAML path')
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RobotProfileError(f'{path}: not valid YAML: {err}') from None
    try:
        return _profile_from_dict(data)
    except RobotProfileError as err:
        raise RobotProfileError(f'{path}: {err}') from None


_TOP_KEYS = {'name', 'description', 'joints', 'cameras', 'extra_state', 'default_instruction'}
_JOINT_KEYS = {'name', 'lower', 'upper', 'max_velocity'}
_CAMERA_KEYS = {'name', 'topic', 'transport'}
_EXTRA_KEYS = {'names', 'topic'}


def _profile_from_dict(data: Any) -> RobotProfile:
    top = _mapping(data, 'the file', _TOP_KEYS, required={'name', 'joints', 'cameras'})
    joints = [
        _mapping(j, f'joints[{i}]', _JOINT_KEYS, required=_JOINT_KEYS)
        for i, j in enumerate(_sequence(top['joints'], 'joints'))
    ]
    cameras = [
        _mapping(c, f'cameras[{i}]', _CAMERA_KEYS, required={'name', 'topic'})
        for i, c in enumerate(_sequence(top['cameras'], 'cameras'))
    ]
    extra = _mapping(top.get('extra_state') or {}, 'extra_state', _EXTRA_KEYS, required=set())

    def numbers(key: str) -> tuple[float, ...]:
        return tuple(_number(j[key], f'joints[{i}].{key}') for i, j in enumerate(joints))

    return RobotProfile(
        name=str(top['name']),
        joint_names=tuple(str(j['name']) for j in joints),
        lower_limits=numbers('lower'),
        upper_limits=numbers('upper'),
        max_velocity=numbers('max_velocity'),
        cameras=tuple(CameraProfile(str(c['name']), str(c['topic']), str(c.get('transport', 'raw'))) for c in cameras),
        extra_state_names=tuple(str(n) for n in _sequence(extra.get('names') or [], 'extra_state.names')),
        extra_state_topic=str(extra.get('topic') or ''),
        default_instruction=str(top.get('default_instruction') or ''),
        description=str(top.get('description') or ''),
    )


def _mapping(value: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RobotProfileError(f'{where} must be a mapping, got {type(value).__name__}')
    unknown = sorted(set(value) - allowed)
    missing = sorted(required - set(value))
    if unknown or missing:
        raise RobotProfileError(
            f'{where}: '
            + '; '.join(
                ([f'unknown keys {unknown} (allowed: {sorted(allowed)})'] if unknown else [])
                + ([f'missing keys {missing}'] if missing else [])
            )
        )
    return value


def _sequence(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise RobotProfileError(f'{where} must be a list, got {type(value).__name__}')
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RobotProfileError(f'{where} must be a number, got {value!r}')
    return float(value)
