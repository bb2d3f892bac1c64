"""Pick-and-place task rules: where cubes and goals spawn and when the task counts as solved."""

from dataclasses import dataclass

import numpy as np

# Reachable with the gripper pointing straight down; past x = 0.30 m the SO-101 wrist runs out of travel.
CUBE_SPAWN_XY = np.array([[0.16, -0.02], [0.28, 0.12]])
DEFAULT_GOAL_XY = np.array([0.22, -0.12])
GOAL_SPAWN_XY = np.array([[0.16, -0.14], [0.28, 0.12]])
MIN_CUBE_GOAL_DISTANCE = 0.08


@dataclass(frozen=True)
class TaskThresholds:
    """Physical criteria of lifting and placing (metres, metres per second)."""

    lift_height: float = 0.03  # a cube pushed along the table never rises this high
    place_distance: float = 0.03  # horizontal cube-goal distance that counts as on the goal
    rest_tolerance: float = 0.01  # the placed cube must rest on the table, not hang above it
    max_rest_speed: float = 0.02  # and be still


@dataclass(frozen=True)
class TaskStatus:
    """Task outcome computed from the physics state."""

    lifted: bool  # the cube was above lift_height at some time since reset
    placed: bool  # lifted, then resting on the goal and released by the gripper
    cube_lift: float  # current height of the cube centre above its resting height
    distance_to_goal: float
    episode_time: float
    message: str

    @property
    def success(self) -> bool:
        """The task is solved once the cube was carried and placed."""
        return self.placed


def sample_layout(rng: np.random.Generator, randomize_goal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Draw (cube_xy, goal_xy) at least MIN_CUBE_GOAL_DISTANCE apart."""
    goal = rng.uniform(*GOAL_SPAWN_XY) if randomize_goal else DEFAULT_GOAL_XY.copy()
    while True:
        cube = rng.uniform(*CUBE_SPAWN_XY)
        if np.linalg.norm(cube - goal) >= MIN_CUBE_GOAL_DISTANCE:
            return cube, goal


def evaluate(
    lifted: bool,
    cube_lift: float,
    distance_to_goal: float,
    cube_speed: float,
    released: bool,
    episode_time: float,
    thresholds: TaskThresholds,
) -> TaskStatus:
    """Combine the physical measurements into a TaskStatus."""
    resting = abs(cube_lift) < thresholds.rest_tolerance and cube_speed < thresholds.max_rest_speed
    on_goal = distance_to_goal < thresholds.place_distance
    placed = lifted and on_goal and resting and released
    if placed:
        message = 'cube placed on the goal'
    elif not lifted:
        message = 'cube not lifted yet'
    elif not on_goal:
        message = f'cube {distance_to_goal:.3f} m from the goal'
    elif not released:
        message = 'cube on the goal but still held'
    else:
        message = 'cube on the goal but not at rest'
    return TaskStatus(
        lifted=lifted,
        placed=placed,
        cube_lift=cube_lift,
        distance_to_goal=distance_to_goal,
        episode_time=episode_time,
        message=message,
    )
