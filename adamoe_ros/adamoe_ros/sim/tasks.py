"""The task catalogue: every scene, object, goal, task and instruction phrase of the SO-101 sim, written once.

The scene, the bridge, the scripted expert, the evaluation and data collection read these tables; nothing else
spells an instruction or a colour. A task's phrases split into `train` (the canonical instruction first; what
demonstrations may say) and `held_out` (paraphrases only evaluation uses, to test that language generalises).

Two scenes share one arm and table:
- `pick_place`: the original single task (one cube, one goal); the bundled demo policy was trained on it.
- `multitask`: a red and a blue cube and a green and a yellow target disc; six tasks whose success conditions
  differ, so only the instruction says what to do. The task of an episode is drawn from its seed.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adamoe_ros.sim.robot import SO101

CUBE_HALF_SIZE = 0.02  # m; every cube is the wheel's 4 cm block


@dataclass(frozen=True)
class CubeDef:
    """A free cube: its name in tasks, its MuJoCo body and colour."""

    name: str
    body: str
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class GoalDef:
    """A flat target disc on the table (a mocap body nothing collides with)."""

    name: str
    body: str
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class TaskDef:
    """One task: move `cube` onto `target` (a goal for 'place', another cube for 'stack')."""

    name: str
    verb: str  # 'place' | 'stack'
    cube: str
    target: str
    train: tuple[str, ...]  # train[0] is the canonical instruction
    held_out: tuple[str, ...] = ()

    @property
    def instruction(self) -> str:
        """The canonical instruction."""
        return self.train[0]

    def phrases(self, split: str) -> tuple[str, ...]:
        """Return the instruction phrases of a split: 'train' or 'held_out'."""
        if split not in ('train', 'held_out'):
            raise ValueError(f"unknown phrase split {split!r} (use 'train' or 'held_out')")
        return self.train if split == 'train' else self.held_out


@dataclass(frozen=True)
class SceneDef:
    """Objects and tasks of one scene, and the privileged state topic the bridge publishes them on."""

    name: str
    cubes: tuple[CubeDef, ...]
    goals: tuple[GoalDef, ...]
    tasks: tuple[TaskDef, ...]
    state_topic: str  # std_msgs/Float64MultiArray: the centres (x, y, z) of `state_objects`, in that order
    state_names: tuple[str, ...]
    state_objects: tuple[str, ...]  # cubes and goals whose centres form the privileged state

    def task(self, name: str) -> TaskDef:
        """Return the task called `name`; raises KeyError naming the known tasks."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f'scene {self.name!r} has no task {name!r} (tasks: {[t.name for t in self.tasks]})')

    def task_for_seed(self, seed: int) -> TaskDef:
        """Return the task of an episode: consecutive seeds cycle through the tasks, so any run of seeds is balanced."""
        return self.tasks[int(seed) % len(self.tasks)]

    def swapped_task(self, task: TaskDef) -> TaskDef:
        """Return the task whose instruction replaces `task`'s in the swapped-instruction evaluation (the next one)."""
        return self.tasks[(self.tasks.index(task) + 1) % len(self.tasks)]


_RED = (0.85, 0.12, 0.1, 1.0)
_BLUE = (0.1, 0.25, 0.85, 1.0)
_GREEN = (0.1, 0.8, 0.2, 1.0)
_YELLOW = (0.95, 0.85, 0.1, 1.0)


def _place(cube: str, goal: str) -> TaskDef:
    train = (
        f'put the {cube} cube on the {goal} target',
        f'place the {cube} cube on the {goal} target',
        f'move the {cube} cube onto the {goal} target',
        f'pick up the {cube} cube and put it on the {goal} target',
    )
    held_out = (f'place the {cube} block onto the {goal} disc', f'leave the {cube} block on the {goal} mark')
    return TaskDef(f'{cube}_on_{goal}', 'place', f'{cube}_cube', f'{goal}_goal', train, held_out)


def _stack(cube: str, base: str) -> TaskDef:
    train = (
        f'stack the {cube} cube on the {base} cube',
        f'put the {cube} cube on top of the {base} cube',
        f'place the {cube} cube onto the {base} cube',
    )
    held_out = (f'pile the {cube} block onto the {base} block', f'set the {cube} block on top of the {base} one')
    return TaskDef(f'stack_{cube}_on_{base}', 'stack', f'{cube}_cube', f'{base}_cube', train, held_out)


def _state_names(objects: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f'{name}_{axis}' for name in objects for axis in 'xyz')


PICK_PLACE = SceneDef(
    name='pick_place',
    cubes=(CubeDef('cube', 'block', (0.6, 0.3, 0.6, 1.0)),),  # the wheel's own block
    goals=(GoalDef('goal', 'goal', _GREEN),),
    tasks=(TaskDef('pick_place', 'place', 'cube', 'goal', (SO101.default_instruction,)),),
    # The profile already names this scene's privileged state (the bundled demo policy reads it).
    state_topic=SO101.extra_state_topic,
    state_names=SO101.extra_state_names,
    state_objects=('cube',),
)

_MULTI_CUBES = (CubeDef('red_cube', 'block', _RED), CubeDef('blue_cube', 'blue_block', _BLUE))
_MULTI_GOALS = (GoalDef('green_goal', 'green_goal', _GREEN), GoalDef('yellow_goal', 'yellow_goal', _YELLOW))
# Every object is in the state (both cubes, both goals): only the instruction says which of them matter.
_MULTI_OBJECTS = tuple(o.name for o in _MULTI_CUBES + _MULTI_GOALS)
MULTITASK = SceneDef(
    name='multitask',
    cubes=_MULTI_CUBES,
    goals=_MULTI_GOALS,
    tasks=(
        _place('red', 'green'),
        _place('blue', 'yellow'),
        _place('red', 'yellow'),
        _place('blue', 'green'),
        _stack('red', 'blue'),
        _stack('blue', 'red'),
    ),
    state_topic='sim/object_positions',
    state_names=_state_names(_MULTI_OBJECTS),
    state_objects=_MULTI_OBJECTS,
)

SCENES: dict[str, SceneDef] = {scene.name: scene for scene in (PICK_PLACE, MULTITASK)}


def scene_def(name: str) -> SceneDef:
    """Return the scene called `name`; raises ValueError naming the known scenes."""
    if name not in SCENES:
        raise ValueError(f'unknown scene {name!r} (scenes: {sorted(SCENES)})')
    return SCENES[name]


def scene_for_state(state_names: Sequence[str]) -> SceneDef:
    """Return the scene whose privileged state is `state_names` (a bundle's state after its joints)."""
    for scene in SCENES.values():
        if tuple(state_names) == scene.state_names:
            return scene
    raise ValueError(f'no scene publishes the state {list(state_names)} (scenes: {sorted(SCENES)})')


def target_rest_position(
    task: TaskDef, cubes: dict[str, np.ndarray], goals: dict[str, np.ndarray], table_z: float
) -> np.ndarray:
    """Where `task.cube`'s centre rests once the task is solved: on the goal disc, or on top of the base cube."""
    if task.verb == 'place':
        goal = goals[task.target]
        return np.array([goal[0], goal[1], table_z])
    if task.verb == 'stack':
        return np.asarray(cubes[task.target], dtype=np.float64) + np.array([0.0, 0.0, 2 * CUBE_HALF_SIZE])
    raise ValueError(f'task {task.name!r} has unknown verb {task.verb!r}')
