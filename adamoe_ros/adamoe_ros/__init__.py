"""adamoe_ros: run AdaMoE VLA policy bundles on ROS 2 robots (runtime half; no torch import)."""

__version__ = '0.1.0'
