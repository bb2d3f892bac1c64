"""SO-101 scene physics and task state, independent of ROS (used by the bridge node, the expert and evaluation)."""

import mujoco
import numpy as np

from adamoe_ros.sim.rendering import CameraRenderer
from adamoe_ros.sim.scene import CUBE_HALF_SIZE, SO101, SceneOptions, build_model
from adamoe_ros.sim.task import TaskStatus, TaskThresholds, evaluate, sample_layout
from adamoe_ros.sim.tasks import PICK_PLACE, SceneDef, TaskDef, scene_def, target_rest_position

# Home pose: arm upright, gripper half open (radians, profile joint order).
HOME_POSITION = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.6])


class So101PickPlaceSim:
    """The SO-101 arm with a scene's cubes and goal markers (tasks.SCENES); joint-position actuated like the servos.

    Each reset draws the layout and the episode's task (scene.task_for_seed) from the seed; task_status() judges
    that task, task_status(other) any other task of the scene on the same physics state.
    """

    joint_names: tuple[str, ...] = SO101.joint_names

    def __init__(
        self,
        randomize_goal: bool = False,
        thresholds: TaskThresholds = TaskThresholds(),  # noqa: B008
        scene_options: SceneOptions = SceneOptions(),  # noqa: B008
        scene: str | SceneDef = PICK_PLACE,
    ) -> None:
        """Build the model; call reset(seed) before use for a randomised layout."""
        self.scene = scene_def(scene) if isinstance(scene, str) else scene
        self.model = build_model(scene_options, self.scene)
        self.data = mujoco.MjData(self.model)
        self.randomize_goal = randomize_goal
        self.thresholds = thresholds
        self._qpos_adr = np.array([self.model.joint(n).qposadr[0] for n in self.joint_names])
        self._qvel_adr = np.array([self.model.joint(n).dofadr[0] for n in self.joint_names])
        self._actuator_ids = np.array([self.model.actuator(n).id for n in self.joint_names])
        # The physics' own limits; test_robot_profile checks that the SO-101 profile states the same ones.
        self.joint_limits = self.model.actuator_ctrlrange[self._actuator_ids].copy()  # (6, 2)
        self._cube_joints = {c.name: self.model.joint(c.body) for c in self.scene.cubes}
        self._cube_body_ids = {c.name: self.model.body(c.body).id for c in self.scene.cubes}
        self._goal_mocap = {g.name: self.model.body(g.body).mocapid[0] for g in self.scene.goals}
        # Every body of the arm: contacts between these and a cube mean the cube is still held.
        self._arm_body_ids = frozenset(
            self.model.body(n).id
            for n in ('base', 'shoulder', 'upper_arm', 'lower_arm', 'wrist', 'gripper', 'moving_jaw_so101_v1')
        )
        self._renderer = CameraRenderer(self.model)
        self._rest_z = CUBE_HALF_SIZE
        self._lifted = dict.fromkeys(self._cube_body_ids, False)
        self.seed = 0
        self.task: TaskDef = self.scene.tasks[0]
        self.reset(0)

    @property
    def extra_state_names(self) -> tuple[str, ...]:
        """Names of extra_state(): the scene's privileged state (object centres)."""
        return self.scene.state_names

    @property
    def dt(self) -> float:
        """Physics step in seconds."""
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        """Simulated seconds since the last reset."""
        return float(self.data.time)

    def reset(self, seed: int) -> np.ndarray:
        """Reset to the home pose with the layout and task drawn from the seed; return the task's cube position."""
        self.seed = int(seed)
        self.task = self.scene.task_for_seed(self.seed)
        cubes_xy, goals_xy = sample_layout(np.random.default_rng(self.seed), self.scene, self.randomize_goal)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qpos_adr] = HOME_POSITION
        self.data.ctrl[self._actuator_ids] = HOME_POSITION
        for name, xy in cubes_xy.items():
            adr = self._cube_joints[name].qposadr[0]
            self.data.qpos[adr : adr + 7] = [xy[0], xy[1], CUBE_HALF_SIZE, 1.0, 0.0, 0.0, 0.0]
        for name, xy in goals_xy.items():
            self.data.mocap_pos[self._goal_mocap[name]] = [xy[0], xy[1], 0.0]
        mujoco.mj_forward(self.model, self.data)
        self._rest_z = float(self.data.xpos[self._cube_body_ids[self.task.cube]][2])
        self._lifted = dict.fromkeys(self._cube_body_ids, False)
        return self.cube_position()

    def clamp_targets(self, targets: np.ndarray) -> np.ndarray:
        """Validate 6 joint targets (finite, right size) and clamp them to the joint limits."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (len(self.joint_names),):
            raise ValueError(f'expected {len(self.joint_names)} joint targets, got shape {targets.shape}')
        if not np.all(np.isfinite(targets)):
            raise ValueError(f'joint targets must be finite, got {targets.tolist()}')
        return np.clip(targets, self.joint_limits[:, 0], self.joint_limits[:, 1])

    def set_joint_targets(self, targets: np.ndarray) -> np.ndarray:
        """Command joint positions (radians, joint_names order); returns the clamped targets applied."""
        clamped = self.clamp_targets(targets)
        self.data.ctrl[self._actuator_ids] = clamped
        return clamped

    def joint_targets(self) -> np.ndarray:
        """Return the currently commanded joint positions."""
        return self.data.ctrl[self._actuator_ids].copy()

    def step(self, n_steps: int = 1) -> None:
        """Advance the physics by n_steps steps of dt, then record which cubes are lifted.

        Lifting is sampled once per call: a carried cube stays up far longer than one control tick.
        """
        if not isinstance(n_steps, int | np.integer):
            raise TypeError(f'step() takes a number of physics steps, got {n_steps!r}; use advance(seconds)')
        if n_steps < 1:
            return
        mujoco.mj_step(self.model, self.data, nstep=int(n_steps))
        for name, body in self._cube_body_ids.items():
            if self.data.xpos[body][2] - self._rest_z > self.thresholds.lift_height:
                self._lifted[name] = True

    def advance(self, seconds: float) -> None:
        """Advance the physics by a duration (rounded to whole physics steps)."""
        self.step(int(round(seconds / self.dt)))

    def joint_positions(self) -> np.ndarray:
        """Measured joint positions (radians)."""
        return self.data.qpos[self._qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        """Measured joint velocities (rad/s)."""
        return self.data.qvel[self._qvel_adr].copy()

    def joint_efforts(self) -> np.ndarray:
        """Actuator forces (N m)."""
        return self.data.actuator_force[self._actuator_ids].copy()

    def cube_position(self, name: str | None = None) -> np.ndarray:
        """Centre of a cube in the world frame (m); by default the cube of the episode's task."""
        return self.data.xpos[self._cube_body_ids[name or self.task.cube]].copy()

    def cube_positions(self) -> dict[str, np.ndarray]:
        """Every cube's centre, by cube name."""
        return {name: self.data.xpos[body].copy() for name, body in self._cube_body_ids.items()}

    def extra_state(self) -> np.ndarray:
        """Return the privileged state (extra_state_names): the centres of the scene's state objects, in order."""
        centres = self.cube_positions() | self.goal_positions()
        return np.concatenate([centres[name] for name in self.scene.state_objects])

    def goal_positions(self) -> dict[str, np.ndarray]:
        """Every goal disc's centre on the table (m), by goal name."""
        return {name: self.data.mocap_pos[mocap].copy() for name, mocap in self._goal_mocap.items()}

    def goal_position(self) -> np.ndarray:
        """Return the scene's first goal (the only one of pick_place); the placed cube's centre rests above it."""
        return self.data.mocap_pos[self._goal_mocap[self.scene.goals[0].name]].copy()

    def target_position(self, task: TaskDef | None = None) -> np.ndarray:
        """Where the task's cube centre rests once the task (default: the episode's) is solved."""
        return target_rest_position(task or self.task, self.cube_positions(), self.goal_positions(), self._rest_z)

    def _released(self, cube: str) -> bool:
        body = self._cube_body_ids[cube]
        for contact in self.data.contact[: self.data.ncon]:
            bodies = {int(self.model.geom_bodyid[contact.geom1]), int(self.model.geom_bodyid[contact.geom2])}
            if body in bodies and bodies & self._arm_body_ids:
                return False
        return True

    def _speed(self, cube: str) -> float:
        adr = self._cube_joints[cube].dofadr[0]
        return float(np.linalg.norm(self.data.qvel[adr : adr + 3]))

    def task_status(self, task: TaskDef | None = None) -> TaskStatus:
        """Lifted/placed of a task (default: the episode's) computed from the current physics state."""
        task = task or self.task
        cube = self.cube_position(task.cube)
        target = self.target_position(task)
        # A stack needs its base where it was put: on the table, still, and not in the jaws.
        support = True
        if task.verb == 'stack':
            base = self.cube_position(task.target)
            support = (
                abs(base[2] - self._rest_z) < self.thresholds.rest_tolerance
                and self._speed(task.target) < self.thresholds.max_rest_speed
                and self._released(task.target)
            )
        return evaluate(
            lifted=self._lifted[task.cube],
            cube_lift=float(cube[2] - self._rest_z),
            distance_to_goal=float(np.linalg.norm(cube[:2] - target[:2])),
            cube_speed=self._speed(task.cube),
            released=self._released(task.cube),
            episode_time=self.time,
            thresholds=self.thresholds,
            height_error=float(cube[2] - target[2]),
            supported=support,
        )

    def render(self, camera: str, height: int = 128, width: int = 128) -> np.ndarray:
        """Render an RGB uint8 frame from one of the profile's cameras (SO101.camera_names)."""
        return self._renderer.render(self.data, camera, height, width)

    def close(self) -> None:
        """Release rendering resources."""
        self._renderer.close()
