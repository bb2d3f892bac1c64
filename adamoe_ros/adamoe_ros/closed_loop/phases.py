"""Task phase of a pick-and-place state, for the expert-usage-per-phase plots."""

import numpy as np

from adamoe_ros.sim.task import TaskStatus

PHASES: tuple[str, ...] = ('reach', 'grasp', 'lift', 'place')
# The jaws are this close to the cube centre while grasping (m).
GRASP_DISTANCE = 0.045


def task_phase(status: TaskStatus, gripper_to_cube: float, cube_to_goal_xy: float, place_radius: float = 0.05) -> str:
    """Label the state: reach (moving to the cube), grasp (at the cube), lift (carrying), place (at the goal)."""
    if status.lifted and (status.placed or cube_to_goal_xy < place_radius):
        return 'place'
    if status.cube_lift > 0.01:
        return 'lift'
    return 'grasp' if gripper_to_cube < GRASP_DISTANCE else 'reach'


def gripper_cube_distance(sim: object, cube: str | None = None) -> float:
    """Distance between the SO-101 gripper body and a cube's centre (default: the task's) in a So101PickPlaceSim (m)."""
    gripper = sim.data.xpos[sim.model.body('gripper').id]
    return float(np.linalg.norm(gripper - sim.cube_position(cube)))
