"""SO-101 pick-and-place physics and task state, independent of ROS (used by the bridge node and tests)."""

import mujoco
import numpy as np

from adamoe_ros.sim.rendering import CameraRenderer
from adamoe_ros.sim.scene import CUBE_BODY, CUBE_HALF_SIZE, GOAL_BODY, SO101, SceneOptions, build_model
from adamoe_ros.sim.task import TaskStatus, TaskThresholds, evaluate, sample_layout

# Home pose: arm upright, gripper half open (radians, profile joint order).
HOME_POSITION = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.6])


class So101PickPlaceSim:
    """The SO-101 arm, a cube and a goal marker; joint-position actuated like the real servos."""

    joint_names: tuple[str, ...] = SO101.joint_names
    extra_state_names: tuple[str, ...] = SO101.extra_state_names  # the cube position, see cube_position()

    def __init__(
        self,
        randomize_goal: bool = False,
        thresholds: TaskThresholds = TaskThresholds(),  # noqa: B008
        scene_options: SceneOptions = SceneOptions(),  # noqa: B008
    ) -> None:
        """Build the model; call reset(seed) before use for a randomised layout."""
        self.model = build_model(scene_options)
        self.data = mujoco.MjData(self.model)
        self.randomize_goal = randomize_goal
        self.thresholds = thresholds
        self._qpos_adr = np.array([self.model.joint(n).qposadr[0] for n in self.joint_names])
        self._qvel_adr = np.array([self.model.joint(n).dofadr[0] for n in self.joint_names])
        self._actuator_ids = np.array([self.model.actuator(n).id for n in self.joint_names])
        # The physics' own limits; test_robot_profile checks that the SO-101 profile states the same ones.
        self.joint_limits = self.model.actuator_ctrlrange[self._actuator_ids].copy()  # (6, 2)
        self._cube_joint = self.model.joint(CUBE_BODY)
        self._cube_body_id = self.model.body(CUBE_BODY).id
        self._mocap_goal = self.model.body(GOAL_BODY).mocapid[0]
        # Every body of the arm: contacts between these and the cube mean the cube is still held.
        self._arm_body_ids = frozenset(
            self.model.body(n).id
            for n in ('base', 'shoulder', 'upper_arm', 'lower_arm', 'wrist', 'gripper', 'moving_jaw_so101_v1')
        )
        self._renderer = CameraRenderer(self.model)
        self._rest_z = CUBE_HALF_SIZE
        self._lifted = False
        self.seed = 0
        self.reset(0)

    @property
    def dt(self) -> float:
        """Physics step in seconds."""
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        """Simulated seconds since the last reset."""
        return float(self.data.time)

    def reset(self, seed: int) -> np.ndarray:
        """Reset to the home pose with a cube (and goal) drawn from the seed; return the cube position."""
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        cube_xy, goal_xy = sample_layout(rng, self.randomize_goal)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qpos_adr] = HOME_POSITION
        self.data.ctrl[self._actuator_ids] = HOME_POSITION
        adr = self._cube_joint.qposadr[0]
        self.data.qpos[adr : adr + 7] = [cube_xy[0], cube_xy[1], CUBE_HALF_SIZE, 1.0, 0.0, 0.0, 0.0]
        self.data.mocap_pos[self._mocap_goal] = [goal_xy[0], goal_xy[1], 0.0]
        mujoco.mj_forward(self.model, self.data)
        self._rest_z = float(self.data.xpos[self._cube_body_id][2])
        self._lifted = False
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
        """Advance the physics by n_steps steps of dt, then record whether the cube is lifted.

        Lifting is sampled once per call: a carried cube stays up far longer than one control tick.
        """
        if not isinstance(n_steps, int | np.integer):
            raise TypeError(f'step() takes a number of physics steps, got {n_steps!r}; use advance(seconds)')
        if n_steps < 1:
            return
        mujoco.mj_step(self.model, self.data, nstep=int(n_steps))
        if self.data.xpos[self._cube_body_id][2] - self._rest_z > self.thresholds.lift_height:
            self._lifted = True

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

    def cube_position(self) -> np.ndarray:
        """Cube centre in the world frame (m)."""
        return self.data.xpos[self._cube_body_id].copy()

    def goal_position(self) -> np.ndarray:
        """Goal centre on the table (m); the placed cube's centre rests CUBE_HALF_SIZE above it."""
        return self.data.mocap_pos[self._mocap_goal].copy()

    def _cube_released(self) -> bool:
        for contact in self.data.contact[: self.data.ncon]:
            bodies = {int(self.model.geom_bodyid[contact.geom1]), int(self.model.geom_bodyid[contact.geom2])}
            if self._cube_body_id in bodies and bodies & self._arm_body_ids:
                return False
        return True

    def task_status(self) -> TaskStatus:
        """Lifted/placed computed from the current physics state."""
        cube = self.cube_position()
        adr = self._cube_joint.dofadr[0]
        speed = float(np.linalg.norm(self.data.qvel[adr : adr + 3]))
        return evaluate(
            lifted=self._lifted,
            cube_lift=float(cube[2] - self._rest_z),
            distance_to_goal=float(np.linalg.norm(cube[:2] - self.goal_position()[:2])),
            cube_speed=speed,
            released=self._cube_released(),
            episode_time=self.time,
            thresholds=self.thresholds,
        )

    def render(self, camera: str, height: int = 128, width: int = 128) -> np.ndarray:
        """Render an RGB uint8 frame from one of the profile's cameras (SO101.camera_names)."""
        return self._renderer.render(self.data, camera, height, width)

    def close(self) -> None:
        """Release rendering resources."""
        self._renderer.close()
