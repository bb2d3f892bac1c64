"""MuJoCo SO-101 pick-and-place simulation: physics/task class, ROS bridge node and scripted expert."""
from adamoe_ros.sim.scene import SO101_JOINTS
from adamoe_ros.sim.so101 import So101PickPlaceSim
from adamoe_ros.sim.task import TaskStatus, TaskThresholds

__all__ = ['SO101_JOINTS', 'So101PickPlaceSim', 'TaskStatus', 'TaskThresholds']
