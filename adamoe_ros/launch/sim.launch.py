"""Launch the MuJoCo SO-101 sim bridge and, optionally, the scripted expert."""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from adamoe_ros.transport import shm_profile_environment


def generate_launch_description() -> LaunchDescription:
    """Bridge with parameters from config/sim_so101.yaml; launch arguments override the common ones."""
    params = PathJoinSubstitution([FindPackageShare('adamoe_ros'), 'config', 'sim_so101.yaml'])
    namespace = LaunchConfiguration('namespace')
    return LaunchDescription(
        [
            # Fast DDS shared memory for camera-sized messages, unless the user chose a profile (README)
            *(SetEnvironmentVariable(name, value) for name, value in shm_profile_environment().items()),
            DeclareLaunchArgument('namespace', default_value='', description='namespace of all sim topics'),
            DeclareLaunchArgument('real_time_factor', default_value='1.0', description='sim seconds per wall second'),
            DeclareLaunchArgument('camera_rate', default_value='10.0', description='Hz per camera, 0 = off'),
            DeclareLaunchArgument('seed', default_value='0', description='seed of the first episode'),
            DeclareLaunchArgument(
                'scene', default_value='pick_place', description='sim/tasks.py scene: pick_place or multitask'
            ),
            DeclareLaunchArgument(
                'expert',
                default_value='false',
                description='also start the scripted expert (call expert/start_episode)',
            ),
            Node(
                package='adamoe_ros',
                executable='sim_bridge_node',
                name='sim_bridge',
                namespace=namespace,
                output='screen',
                parameters=[
                    params,
                    {
                        # Typed: untyped, launch_ros would pass real_time_factor:=2 as an INTEGER.
                        'real_time_factor': ParameterValue(LaunchConfiguration('real_time_factor'), value_type=float),
                        'camera_rate': ParameterValue(LaunchConfiguration('camera_rate'), value_type=float),
                        'seed': ParameterValue(LaunchConfiguration('seed'), value_type=int),
                        'scene': ParameterValue(LaunchConfiguration('scene'), value_type=str),
                    },
                ],
            ),
            Node(
                package='adamoe_ros',
                executable='scripted_expert',
                name='scripted_expert',
                namespace=namespace,
                output='screen',
                parameters=[params, {'scene': ParameterValue(LaunchConfiguration('scene'), value_type=str)}],
                condition=IfCondition(LaunchConfiguration('expert')),
            ),
        ]
    )
