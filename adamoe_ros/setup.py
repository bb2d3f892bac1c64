"""ament_python package of the adamoe_ros nodes (`ros2 run adamoe_ros <executable>`)."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'adamoe_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=[package_name, package_name + '.*']),
    package_data={package_name: ['sim/assets/*.xml', 'bundles/*/*', 'bundles/*/*/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py') + glob('launch/*.runner.yaml')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='adamoe_ros developers',
    maintainer_email='dev@adamoe-ros.example',
    description='AdaMoE VLA policy runtime, teleop recorder and MuJoCo sim bridge for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'policy_node = adamoe_ros.policy.node:main',
            'sim_bridge_node = adamoe_ros.sim.bridge_node:main',
            'scripted_expert = adamoe_ros.sim.scripted_expert:main',
            'recorder_node = adamoe_ros.recorder.node:main',
            'mcap_to_lerobot = adamoe_ros.recorder.mcap_convert:main',
            'adamoe_run = adamoe_ros.runner:main',
            'adamoe_demo = adamoe_ros.demo:main',
        ],
    },
)
