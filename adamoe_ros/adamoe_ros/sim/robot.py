"""The simulated robot: the SO-101 profile (joints = the MJCF joints and actuators, limits, cameras).

It also names the single-task scene's privileged state and instruction.
"""

from adamoe_contract.robots import load_robot_profile

SO101 = load_robot_profile('so101')
