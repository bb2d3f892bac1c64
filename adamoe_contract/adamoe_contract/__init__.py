"""The contract training and runtime share: the policy bundle format and the robot profiles.

Light on purpose (numpy and PyYAML only; no torch, no ROS), like openpi's client package: the export writes
what this package defines, and the runtime validates and reads bundles with it.
"""
