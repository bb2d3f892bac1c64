"""Launch the AdaMoE policy node as a managed node and bring it to active.

ros2 launch adamoe_ros policy.launch.py bundle_path:=/path/to/bundle robot_config:=/path/to/robot.yaml \
    namespace:=arm1 use_sim_time:=true dry_run:=true camera_remaps:="cameras/front/image_raw:=/cam0/image_raw"
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from adamoe_ros.transport import shm_profile_environment

PACKAGE = 'adamoe_ros'
EXECUTABLE = 'policy_node'


def parse_remaps(text: str) -> list[tuple[str, str]]:
    """Turn 'from:=to,from2:=to2' into remapping pairs."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(','))):
        source, sep, target = item.partition(':=')
        if not sep or not source or not target:
            raise ValueError(f'camera_remaps entry {item!r} is not FROM:=TO')
        pairs.append((source, target))
    return pairs


def policy_actions(context: LaunchContext) -> list:
    """Create the lifecycle node and the events that configure and activate it."""
    autostart = LaunchConfiguration('autostart')
    overrides = {
        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool),
        'dry_run': ParameterValue(LaunchConfiguration('dry_run'), value_type=bool),
    }
    bundle = LaunchConfiguration('bundle_path').perform(context)
    if bundle:  # else the robot_config file's bundle_path
        overrides['bundle_path'] = bundle
    node = LifecycleNode(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=LaunchConfiguration('node_name'),
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=[LaunchConfiguration('robot_config'), overrides],
        remappings=parse_remaps(LaunchConfiguration('camera_remaps').perform(context)),
    )
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=Transition.TRANSITION_CONFIGURE),
        condition=IfCondition(autostart),
    )
    activate_when_inactive = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            start_state='configuring',
            goal_state='inactive',
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(node), transition_id=Transition.TRANSITION_ACTIVATE
                    )
                )
            ],
        ),
        condition=IfCondition(autostart),
    )
    return [node, activate_when_inactive, configure]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and start the policy node."""
    default_config = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'so101.yaml'])
    return LaunchDescription(
        [
            # Fast DDS shared memory for camera-sized messages, unless the user chose a profile (README)
            *(SetEnvironmentVariable(name, value) for name, value in shm_profile_environment().items()),
            DeclareLaunchArgument(
                'bundle_path',
                default_value='',
                description="Policy bundle folder or shipped bundle name (default: robot_config's bundle_path)",
            ),
            DeclareLaunchArgument(
                'robot_config',
                default_value=default_config,
                description='Node parameter YAML naming its robot_profile (see config/generic_template.yaml)',
            ),
            DeclareLaunchArgument('namespace', default_value='', description='Namespace of the node and its topics'),
            DeclareLaunchArgument('node_name', default_value='policy_node', description='Name of the node'),
            DeclareLaunchArgument('use_sim_time', default_value='false', description='Use /clock (simulation)'),
            DeclareLaunchArgument(
                'dry_run', default_value='false', description='Publish chunks and status only, never a command'
            ),
            DeclareLaunchArgument(
                'camera_remaps',
                default_value='',
                description='Comma-separated FROM:=TO topic remappings, e.g. '
                "'cameras/front/image_raw:=/cam0/image_raw'",
            ),
            DeclareLaunchArgument(
                'autostart', default_value='true', description='Configure and activate the node after start'
            ),
            OpaqueFunction(function=policy_actions),
        ]
    )
