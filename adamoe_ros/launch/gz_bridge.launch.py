"""Bridge a Gazebo SO-101 world onto the adamoe_ros sim topics (untested here: needs ros_gz_bridge + Gazebo)."""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from adamoe_ros.transport import shm_profile_environment


def generate_launch_description() -> LaunchDescription:
    """Start ros_gz_bridge's parameter_bridge with config/gz_bridge.yaml (or a file of your own)."""
    default_config = PathJoinSubstitution([FindPackageShare('adamoe_ros'), 'config', 'gz_bridge.yaml'])
    return LaunchDescription(
        [
            # Fast DDS shared memory for camera-sized messages, unless the user chose a profile (README)
            *(SetEnvironmentVariable(name, value) for name, value in shm_profile_environment().items()),
            DeclareLaunchArgument(
                'config_file', default_value=default_config, description='ros_gz_bridge YAML mapping'
            ),
            DeclareLaunchArgument('namespace', default_value='', description='namespace of the ROS side'),
            Node(
                package='ros_gz_bridge',
                executable='parameter_bridge',
                name='gz_bridge',
                namespace=LaunchConfiguration('namespace'),
                output='screen',
                parameters=[
                    {
                        'config_file': ParameterValue(LaunchConfiguration('config_file'), value_type=str),
                        'use_sim_time': True,
                    }
                ],
            ),
        ]
    )
