"""MuJoCo SO-101 scenes (tasks.py: the single pick-and-place and the multi-task scene), ROS bridge and expert."""

from adamoe_ros.sim.scene import SO101
from adamoe_ros.sim.so101 import So101PickPlaceSim
from adamoe_ros.sim.task import TaskStatus, TaskThresholds

__all__ = ['SO101', 'So101PickPlaceSim', 'TaskStatus', 'TaskThresholds']
