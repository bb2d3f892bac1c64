"""Teleop recorder: aligned ROS streams into LeRobot v3 datasets, live (recorder_node) or from MCAP (mcap_to_lerobot)."""
