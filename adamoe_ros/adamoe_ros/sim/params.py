"""Parameters of the sim bridge and of the scripted expert (one table per node, see adamoe_ros.parameters).

Both nodes read them once, at construction: they are read-only.
"""

from dataclasses import dataclass

from adamoe_ros.parameters import ParameterTable, param
from adamoe_ros.sim.tasks import SCENES

_SCENE_CHOICES = tuple(SCENES)


@dataclass(frozen=True)
class SimBridgeParams(ParameterTable):
    """Parameters of sim_bridge_node."""

    physics_steps_per_tick: int = param(10, 'MuJoCo steps (2 ms each) per control tick', ge=1)
    real_time_factor: float = param(1.0, 'sim seconds per wall second; >1 runs faster', gt=0.0)
    joint_state_rate: float = param(50.0, 'Hz (sim time) of joint_states and the privileged state', gt=0.0)
    camera_rate: float = param(10.0, 'Hz (sim time) of each camera; <= 0 disables rendering')
    image_height: int = param(128, 'camera image height (pixels)', ge=1)
    image_width: int = param(128, 'camera image width (pixels)', ge=1)
    max_joint_speed: float = param(6.0, 'rad/s limit on commanded target motion; <= 0 disables')
    scene: str = param('pick_place', 'scene of sim/tasks.py: objects, goals and tasks', choices=_SCENE_CHOICES)
    randomize_goal: bool = param(False, 'one-goal scenes: draw the goal from the seed too (else fixed)')
    seed: int = param(0, 'seed of the first episode (the seed also picks its task)', ge=0)


@dataclass(frozen=True)
class ScriptedExpertParams(ParameterTable):
    """Parameters of the scripted_expert node."""

    control_rate: float = param(10.0, 'Hz (sim time) of published commands', gt=0.0)
    scene: str = param('pick_place', 'scene of sim/tasks.py (as the sim bridge)', choices=_SCENE_CHOICES)
    phrase_seed: int = param(
        0, 'seed of the per-episode draws: the train phrase for the instruction topic, the disturbance', ge=0
    )
    episode_timeout: float = param(40.0, 'sim seconds before giving up', gt=0.0)
    recovery: bool = param(
        False,
        'demonstrations to recover from (expert_plan.RECOVERY_SETTINGS): close until the jaws stop, regrasp a '
        'missed cube, push the follower off in some first grasps (leader/joint_states keeps the intended command)',
    )
