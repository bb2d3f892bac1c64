"""MuJoCo SO-101 pick-and-place simulation: physics/task class, ROS bridge node and scripted expert."""

from adamoe_ros.sim.scene import SO101
from adamoe_ros.sim.so101 import So101PickPlaceSim
from adamoe_ros.sim.task import TaskStatus, TaskThresholds

__all__ = ['SO101', 'So101PickPlaceSim', 'TaskStatus', 'TaskThresholds']
