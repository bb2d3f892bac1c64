"""Launch the teleop recorder with the SO-101 profile (ros2 launch adamoe_ros record.launch.py).

Written for real ROS 2 installs: `launch`/`launch_ros` are not on PyPI, so the project venv starts the recorder with
`python -m adamoe_ros.recorder.node --ros-args --params-file config/record_so101.yaml` or the in-process runner.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from adamoe_ros.transport import shm_profile_environment


def generate_launch_description() -> LaunchDescription:
    """Describe the recorder node with its params file, dataset location and sim-time switch as arguments."""
    default_params = PathJoinSubstitution([FindPackageShare('adamoe_ros'), 'config', 'record_so101.yaml'])
    return LaunchDescription(
        [
            # Fast DDS shared memory for camera-sized messages, unless the user chose a profile (README)
            *(SetEnvironmentVariable(name, value) for name, value in shm_profile_environment().items()),
            DeclareLaunchArgument(
                'params_file',
                default_value=default_params,
                description='recorder parameters (topic mapping, fps, tolerance)',
            ),
            DeclareLaunchArgument(
                'dataset_root', default_value='', description="dataset folder; '' = $HF_LEROBOT_HOME/<repo_id>"
            ),
            DeclareLaunchArgument('repo_id', default_value='local/so101_teleop', description='LeRobot repo id'),
            DeclareLaunchArgument(
                'use_sim_time',
                default_value='false',
                description='true when recording the MuJoCo sim (it publishes /clock)',
            ),
            DeclareLaunchArgument('namespace', default_value='', description='robot namespace'),
            Node(
                package='adamoe_ros',
                executable='recorder_node',
                name='recorder',
                namespace=LaunchConfiguration('namespace'),
                output='screen',
                parameters=[
                    LaunchConfiguration('params_file'),
                    {
                        'dataset_root': ParameterValue(LaunchConfiguration('dataset_root'), value_type=str),
                        'repo_id': ParameterValue(LaunchConfiguration('repo_id'), value_type=str),
                        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool),
                    },
                ],
            ),
        ]
    )
