"""ament_python package of the bundle contract shared by training and the runtime (no torch, no ROS)."""

from setuptools import find_packages, setup

package_name = 'adamoe_contract'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=[package_name, package_name + '.*']),
    package_data={package_name: ['robots/*.yaml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'pyyaml'],
    zip_safe=True,
    maintainer='adamoe_ros developers',
    maintainer_email='dev@adamoe-ros.example',
    description='Policy bundle format and robot profiles shared by adamoe_ros and its training package.',
    license='Apache-2.0',
)
