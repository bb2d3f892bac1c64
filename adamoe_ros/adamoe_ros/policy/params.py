"""Parameters of the policy node: declared with descriptions, read and checked into one dataclass."""
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from adamoe_ros.policy.chunk_queue import EXECUTION_MODES

COMMAND_STREAMS = ('float64_array', 'joint_state', 'both', 'none')
CAMERA_TRANSPORTS = ('raw', 'compressed')

# name -> (default, description). Empty-list defaults are given as a type so they start unset.
PARAMETERS: dict[str, tuple[Any, str]] = {
    'bundle_path': ('', 'Folder of the exported policy bundle (bundle.json, prefix.onnx, denoise.onnx).'),
    'robot_profile': ('', "Robot profile giving the joint limits and velocities: a shipped name ('so101', "
                          "'aloha') or a profile YAML path. Its joints must be the bundle's, in order."),
    'camera_names': (Parameter.Type.STRING_ARRAY, 'Bundle camera names to subscribe (default: all).'),
    'camera_topics': (Parameter.Type.STRING_ARRAY,
                      'Topic per camera name (default: cameras/<name>/image_raw or .../compressed).'),
    'camera_transports': (Parameter.Type.STRING_ARRAY,
                          "'raw' (sensor_msgs/Image) or 'compressed' (CompressedImage) per camera."),
    'joint_states_topic': ('joint_states', 'sensor_msgs/JointState with the measured joint positions.'),
    'instruction_topic': ('instruction', 'std_msgs/String task instruction (reliable, transient local).'),
    'extra_state_topic': ('sim/cube_position',
                          'std_msgs/Float64MultiArray with the bundle extra state (used when it has any).'),
    'default_instruction': ('', 'Instruction used until one arrives on the topic (empty: wait for it).'),
    'max_instruction_length': (256, 'Longer instructions are rejected (characters).'),
    'max_image_side': (4096, 'Images with a larger width or height are rejected (pixels).'),
    'allow_extra_joints': (False, 'Accept JointState messages naming joints the bundle does not use.'),
    'max_image_age': (0.5, 'Camera frames older than this are stale: no commands (s).'),
    'max_joint_state_age': (0.25, 'Joint states older than this are stale: no commands (s).'),
    'max_extra_state_age': (0.5, 'Extra state older than this is stale: no commands (s).'),
    'max_future_stamp': (0.1, 'Camera and joint-state stamps further ahead of the node clock are rejected (s).'),
    'control_rate': (50.0, 'Rate of the per-step command stream (Hz).'),
    'execution_mode': ('rtc', "Chunk execution: 'rtc' (guided by the queued actions), 'blend' or 'latest'."),
    'refill_threshold': (0.5, 'Request a new chunk when fewer than this fraction of the horizon is queued.'),
    'blend_new_weight': (0.7, "Weight of the new chunk on the overlap in 'blend' mode (old gets 1 - w)."),
    'sync_inference_to_camera': (True, 'Start each inference on the next frame of the first camera.'),
    'dry_run': (False, 'Publish chunks, usage and status but never a command.'),
    'command_stream': ('float64_array',
                       "Per-step commands: 'float64_array', 'joint_state', 'both' or 'none'."),
    'publish_trajectory': (True, 'Publish each new chunk as trajectory_msgs/JointTrajectory.'),
    'command_topic': ('forward_position_controller/commands', 'Float64MultiArray command topic.'),
    'joint_command_topic': ('joint_command', 'JointState command topic.'),
    'trajectory_topic': ('joint_trajectory_controller/joint_trajectory', 'JointTrajectory topic.'),
    'status_rate': (2.0, 'Rate of policy/status and /diagnostics (Hz).'),
    'intra_op_threads': (1, 'ONNX Runtime intra-op threads.'),
    'inference_thread_nice': (10, 'Niceness of the inference thread, so the control timer wins the CPU (Linux).'),
    'providers': (Parameter.Type.STRING_ARRAY, 'ONNX Runtime execution providers (default: engine choice).'),
    'noise_seed': (-1, 'Seed of the flow-matching noise per chunk (-1: random).'),
    'warn_throttle': (2.0, 'Minimum time between two warnings about the same topic and problem (s).'),
}


@dataclass(frozen=True)
class PolicyParams:
    """Values of every policy node parameter, types checked."""

    bundle_path: str
    robot_profile: str
    camera_names: list[str]
    camera_topics: list[str]
    camera_transports: list[str]
    joint_states_topic: str
    instruction_topic: str
    extra_state_topic: str
    default_instruction: str
    max_instruction_length: int
    max_image_side: int
    allow_extra_joints: bool
    max_image_age: float
    max_joint_state_age: float
    max_extra_state_age: float
    max_future_stamp: float
    control_rate: float
    execution_mode: str
    refill_threshold: float
    blend_new_weight: float
    sync_inference_to_camera: bool
    dry_run: bool
    command_stream: str
    publish_trajectory: bool
    command_topic: str
    joint_command_topic: str
    trajectory_topic: str
    status_rate: float
    intra_op_threads: int
    inference_thread_nice: int
    providers: list[str]
    noise_seed: int
    warn_throttle: float


def declare_policy_parameters(node: Node) -> None:
    """Declare every parameter with its description; integers given for floats are accepted."""
    for name, (default, description) in PARAMETERS.items():
        try:
            node.declare_parameter(name, default, ParameterDescriptor(description=description))
        except InvalidParameterTypeException:
            # YAML writes 1 for 1.0; accept it and convert when reading.
            node.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                      dynamic_typing=True))


def read_policy_parameters(node: Node) -> PolicyParams:
    """Read and check all parameters; ValueError names the parameter and the problem."""
    values: dict[str, Any] = {}
    for name, (default, _) in PARAMETERS.items():
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            value = []
        values[name] = _coerce(name, value, default)
    params = PolicyParams(**values)
    _check(params)
    return params


def _coerce(name: str, value: Any, default: Any) -> Any:
    try:
        if default is Parameter.Type.STRING_ARRAY:
            return [str(v) for v in (value or [])]
        if default is Parameter.Type.DOUBLE_ARRAY or isinstance(default, list):
            return [float(v) for v in (value or [])]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise TypeError
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f'parameter {name!r}: cannot use {value!r} (expected like {default!r})') from None


def _check(p: PolicyParams) -> None:
    positive = {'control_rate': p.control_rate, 'status_rate': p.status_rate,
                'max_image_age': p.max_image_age, 'max_joint_state_age': p.max_joint_state_age,
                'max_extra_state_age': p.max_extra_state_age, 'max_future_stamp': p.max_future_stamp,
                'max_instruction_length': p.max_instruction_length,
                'max_image_side': p.max_image_side, 'intra_op_threads': p.intra_op_threads}
    for name, value in positive.items():
        if not value > 0:
            raise ValueError(f'parameter {name!r} must be positive, got {value}')
    if p.execution_mode not in EXECUTION_MODES:
        raise ValueError(f'parameter execution_mode must be one of {EXECUTION_MODES}, got {p.execution_mode!r}')
    if p.command_stream not in COMMAND_STREAMS:
        raise ValueError(f'parameter command_stream must be one of {COMMAND_STREAMS}, got {p.command_stream!r}')
    bad = [t for t in p.camera_transports if t not in CAMERA_TRANSPORTS]
    if bad:
        raise ValueError(f'parameter camera_transports: {bad} not in {CAMERA_TRANSPORTS}')
    if not 0.0 < p.refill_threshold <= 1.0:
        raise ValueError(f'parameter refill_threshold must be in (0, 1], got {p.refill_threshold}')
    if not 0.0 <= p.blend_new_weight <= 1.0:
        raise ValueError(f'parameter blend_new_weight must be in [0, 1], got {p.blend_new_weight}')
