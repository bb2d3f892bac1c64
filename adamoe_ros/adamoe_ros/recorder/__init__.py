"""Teleop recorder: aligned ROS streams into LeRobot v3 datasets, live or from MCAP bags."""
