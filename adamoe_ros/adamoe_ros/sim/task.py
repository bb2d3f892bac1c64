"""Task rules: where cubes and goals spawn and when a place or stack counts as solved."""

from dataclasses import dataclass

import numpy as np

from adamoe_ros.sim.tasks import SceneDef

# Reachable with the gripper pointing straight down; past x = 0.30 m the SO-101 wrist runs out of travel.
CUBE_SPAWN_XY = np.array([[0.16, -0.02], [0.28, 0.12]])
DEFAULT_GOAL_XY = np.array([0.22, -0.12])
GOAL_SPAWN_XY = np.array([[0.16, -0.14], [0.28, 0.12]])
MIN_CUBE_GOAL_DISTANCE = 0.08
# Multi-object scenes: the open jaws reach about 5 cm either side of the grasped cube, so a neighbour cube
# further than this is never touched while grasping or placing.
MIN_CUBE_CUBE_DISTANCE = 0.09
MIN_GOAL_GOAL_DISTANCE = 0.08  # the discs do not overlap


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


def sample_layout(
    rng: np.random.Generator, scene: SceneDef, randomize_goal: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Draw (cube xy by name, goal xy by name), every pair of objects apart by its minimum distance.

    A one-goal scene keeps its goal fixed unless randomize_goal (the single-task demo learns the cube position
    alone); with several goals they are always drawn, else the layout would tell which goal is which. Objects are
    drawn in turn by rejection; where earlier ones leave no room for the next, the whole layout is drawn again.
    """
    while True:
        layout = _try_layout(rng, scene, randomize_goal)
        if layout is not None:
            return layout


def _try_layout(
    rng: np.random.Generator, scene: SceneDef, randomize_goal: bool, tries: int = 100
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    goals: dict[str, np.ndarray] = {}
    for goal in scene.goals:
        if len(scene.goals) == 1 and not randomize_goal:
            goals[goal.name] = DEFAULT_GOAL_XY.copy()
            continue
        xy = _draw(rng, GOAL_SPAWN_XY, tries, [(g, MIN_GOAL_GOAL_DISTANCE) for g in goals.values()])
        if xy is None:
            return None
        goals[goal.name] = xy
    cubes: dict[str, np.ndarray] = {}
    for cube in scene.cubes:
        apart = [(g, MIN_CUBE_GOAL_DISTANCE) for g in goals.values()]
        xy = _draw(rng, CUBE_SPAWN_XY, tries, apart + [(c, MIN_CUBE_CUBE_DISTANCE) for c in cubes.values()])
        if xy is None:
            return None
        cubes[cube.name] = xy
    return cubes, goals


def _draw(
    rng: np.random.Generator, area: np.ndarray, tries: int, apart: list[tuple[np.ndarray, float]]
) -> np.ndarray | None:
    for _ in range(tries):
        xy = rng.uniform(*area)
        if all(np.linalg.norm(xy - other) >= distance for other, distance in apart):
            return xy
    return None


def evaluate(
    lifted: bool,
    cube_lift: float,
    distance_to_goal: float,
    cube_speed: float,
    released: bool,
    episode_time: float,
    thresholds: TaskThresholds,
    height_error: float | None = None,
    supported: bool = True,
) -> TaskStatus:
    """Combine the physical measurements into a TaskStatus.

    height_error: cube centre above where it rests when solved (default cube_lift: on the table); supported:
    what it rests on is in place (a stack's base cube on the table, still and released).
    """
    height_error = cube_lift if height_error is None else height_error
    resting = abs(height_error) < thresholds.rest_tolerance and cube_speed < thresholds.max_rest_speed
    on_goal = distance_to_goal < thresholds.place_distance
    placed = lifted and on_goal and resting and released and supported
    if placed:
        message = 'cube placed on the goal'
    elif not supported:
        message = 'the cube underneath is not resting on the table'
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
