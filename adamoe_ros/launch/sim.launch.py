"""Launch the MuJoCo SO-101 sim bridge and, optionally, the scripted expert."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    """Bridge with parameters from config/sim_so101.yaml; launch arguments override the common ones."""
    params = PathJoinSubstitution([FindPackageShare('adamoe_ros'), 'config', 'sim_so101.yaml'])
    namespace = LaunchConfiguration('namespace')
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='', description='namespace of all sim topics'),
        DeclareLaunchArgument('real_time_factor', default_value='1.0',
                              description='sim seconds per wall second'),
        DeclareLaunchArgument('camera_rate', default_value='10.0', description='Hz per camera, 0 = off'),
        DeclareLaunchArgument('seed', default_value='0', description='seed of the first episode'),
        DeclareLaunchArgument('expert', default_value='false',
                              description='also start the scripted expert (call expert/start_episode)'),
        Node(package='adamoe_ros', executable='sim_bridge_node', name='sim_bridge', namespace=namespace,
             output='screen',
             parameters=[params, {'real_time_factor': LaunchConfiguration('real_time_factor'),
                                  'camera_rate': LaunchConfiguration('camera_rate'),
                                  'seed': LaunchConfiguration('seed')}]),
        Node(package='adamoe_ros', executable='scripted_expert', name='scripted_expert', namespace=namespace,
             output='screen', parameters=[params], condition=IfCondition(LaunchConfiguration('expert'))),
    ])
