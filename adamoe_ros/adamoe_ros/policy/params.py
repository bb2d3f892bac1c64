"""Parameters of the policy node (one table, see adamoe_ros.parameters) and their checks against the bundle.

The node reads them at every configure, so they stay writable: `ros2 param set` validates each value and it
applies from the next configure.
"""

from dataclasses import dataclass
from typing import ClassVar

from rclpy.node import Node

from adamoe_contract.robots import RobotProfile, load_robot_profile
from adamoe_ros.engine import BundleSpec
from adamoe_ros.parameters import ParameterTable, declare_parameters, param, read_parameters
from adamoe_ros.policy.chunk_queue import DEFAULT_REFILL_THRESHOLD, EXECUTION_MODES

COMMAND_STREAMS = ('float64_array', 'joint_state', 'both', 'none')
CAMERA_TRANSPORTS = ('raw', 'compressed')
ENGINE_HOSTS = ('thread', 'process')


@dataclass(frozen=True)
class PolicyParams(ParameterTable):
    """Every policy node parameter: type, default, description and allowed values."""

    READ_ONLY: ClassVar[bool] = False

    bundle_path: str = param(
        '',
        'Policy bundle: a folder (bundle.json, prefix.onnx, denoise.onnx) or the name of one shipped in '
        'adamoe_ros/bundles/.',
    )
    robot_profile: str = param(
        '',
        'Robot profile giving the joint limits and velocities and the default camera and extra-state topics: a '
        "shipped name ('so101', 'aloha') or a profile YAML path. Its joints must be the bundle's, in order.",
    )
    camera_names: tuple[str, ...] = param((), 'Bundle camera names to subscribe (default: all).')
    camera_topics: tuple[str, ...] = param(
        (),
        "Topic per camera name (default: the robot profile's topic for the camera, else "
        'cameras/<name>/image_raw or .../compressed).',
    )
    camera_transports: tuple[str, ...] = param(
        (),
        "'raw' (sensor_msgs/Image) or 'compressed' (CompressedImage) per camera (default: the robot profile's).",
        choices=CAMERA_TRANSPORTS,
    )
    joint_states_topic: str = param('joint_states', 'sensor_msgs/JointState with the measured joint positions.')
    instruction_topic: str = param('instruction', 'std_msgs/String task instruction (reliable, transient local).')
    extra_state_topic: str = param(
        '',
        'std_msgs/Float64MultiArray with the bundle extra state, when it has any (default: the robot profile '
        "extra_state topic, if the bundle's extra state is the profile's).",
    )
    default_instruction: str = param('', 'Instruction used until one arrives on the topic (empty: wait for it).')
    max_instruction_length: int = param(256, 'Longer instructions are rejected (characters).', ge=1)
    max_image_side: int = param(4096, 'Images with a larger width or height are rejected (pixels).', ge=1)
    allow_extra_joints: bool = param(False, 'Accept JointState messages naming joints the bundle does not use.')
    max_image_age: float = param(0.5, 'Camera frames older than this are stale: no commands (s).', gt=0.0)
    max_joint_state_age: float = param(0.25, 'Joint states older than this are stale: no commands (s).', gt=0.0)
    max_extra_state_age: float = param(0.5, 'Extra state older than this is stale: no commands (s).', gt=0.0)
    max_future_stamp: float = param(
        0.1, 'Camera and joint-state stamps further ahead of the node clock are rejected (s).', gt=0.0
    )
    control_rate: float = param(50.0, 'Rate of the per-step command stream (Hz).', gt=0.0)
    execution_mode: str = param(
        'latest',
        "Chunk execution: 'latest' (each new chunk replaces the queue), 'blend', or 'rtc' (guided by the queued "
        'actions, for inference that takes several control periods).',
        choices=EXECUTION_MODES,
    )
    refill_threshold: float = param(
        DEFAULT_REFILL_THRESHOLD,
        'Request a new chunk when fewer than this fraction of the horizon is queued.',
        gt=0.0,
        le=1.0,
    )
    blend_new_weight: float = param(
        0.7, "Weight of the new chunk on the overlap in 'blend' mode (old gets 1 - w).", ge=0.0, le=1.0
    )
    sync_inference_to_camera: bool = param(True, 'Start each inference on the next frame of the first camera.')
    dry_run: bool = param(False, 'Publish chunks, usage and status but never a command.')
    command_stream: str = param(
        'float64_array', "Per-step commands: 'float64_array', 'joint_state', 'both' or 'none'.", choices=COMMAND_STREAMS
    )
    publish_trajectory: bool = param(True, 'Publish each new chunk as trajectory_msgs/JointTrajectory.')
    command_topic: str = param('forward_position_controller/commands', 'Float64MultiArray command topic.')
    joint_command_topic: str = param('joint_command', 'JointState command topic.')
    trajectory_topic: str = param('joint_trajectory_controller/joint_trajectory', 'JointTrajectory topic.')
    status_rate: float = param(2.0, 'Rate of policy/status and /diagnostics (Hz).', gt=0.0)
    intra_op_threads: int = param(1, 'ONNX Runtime intra-op threads.', ge=1)
    engine_host: str = param(
        'process',
        "Where the engine runs: 'thread' (the inference thread of this process) or 'process' (a child process "
        'fed through shared memory, so inference never holds the interpreter that runs the control timer).',
        choices=ENGINE_HOSTS,
    )
    inference_thread_nice: int = param(
        10,
        'Niceness of the inference thread and of an engine process, so the control timer wins the CPU (Linux).',
        ge=-20,
        le=19,
    )
    providers: tuple[str, ...] = param((), 'ONNX Runtime execution providers (default: engine choice).')
    noise_seed: int = param(-1, 'Seed of the flow-matching noise per chunk (-1: random).', ge=-1)
    warn_throttle: float = param(2.0, 'Minimum time between two warnings about the same topic and problem (s).', ge=0.0)


@dataclass(frozen=True)
class BundleFit:
    """What the parameters resolve to for the loaded bundle: the cameras to subscribe and the robot."""

    camera_names: tuple[str, ...]
    camera_topics: tuple[str, ...]
    camera_transports: tuple[str, ...]
    extra_state_topic: str  # '' when the bundle has no extra state
    robot: RobotProfile


def declare_policy_parameters(node: Node) -> None:
    """Declare every policy parameter with its descriptor and validate later changes."""
    declare_parameters(node, PolicyParams)


def read_policy_parameters(node: Node) -> PolicyParams:
    """Read and check all parameters; ValueError names the parameter and the problem."""
    return read_parameters(node, PolicyParams)


def check_against_bundle(p: PolicyParams, spec: BundleSpec) -> BundleFit:
    """Check the parameters against the loaded bundle; ValueError names the parameter that does not fit.

    Topics and transports not given as parameters are the robot profile's, the one home of a robot's facts.
    """
    robot = load_robot_profile(p.robot_profile)
    if robot.joint_names != tuple(spec.joint_names):
        # Commands are joint arrays in bundle order: another order would drive the wrong joints.
        raise ValueError(
            f'bundle joints {list(spec.joint_names)} differ from the joints of robot profile '
            f'{robot.name!r} {list(robot.joint_names)} (same names in the same order needed)'
        )
    bundle_cameras = tuple(spec.camera_names)
    cameras = p.camera_names or bundle_cameras
    missing = [c for c in bundle_cameras if c not in cameras]
    unknown = [c for c in cameras if c not in bundle_cameras]
    if missing or unknown:
        raise ValueError(f'camera_names {list(cameras)} must name exactly the bundle cameras {list(bundle_cameras)}')
    for name, values in (('camera_topics', p.camera_topics), ('camera_transports', p.camera_transports)):
        if values and len(values) != len(cameras):
            raise ValueError(f'{name} has {len(values)} entries for {len(cameras)} cameras {list(cameras)}')
    transports = p.camera_transports or tuple(robot.camera_transport(c) for c in cameras)
    topics = p.camera_topics or tuple(robot.camera_topic(c, t) for c, t in zip(cameras, transports))
    extra = tuple(spec.state_names[len(spec.joint_names) :])
    extra_state_topic = p.extra_state_topic if extra else ''
    if extra and not extra_state_topic:
        # The profile's topic carries the profile's extra state: only a bundle of the same state may read it.
        if extra != robot.extra_state_names:
            raise ValueError(
                f'extra_state_topic: the bundle has extra state {list(extra)} and robot profile {robot.name!r} '
                f"publishes {list(robot.extra_state_names)}; set the topic that carries the bundle's"
            )
        extra_state_topic = robot.extra_state_topic
    return BundleFit(cameras, topics, transports, extra_state_topic, robot)
