"""Top-down inverse kinematics for the SO-101 grasp point, on a private MjData of the sim model."""

import mujoco
import numpy as np

from adamoe_ros.sim.scene import ARM_JOINTS, JAW_PADS

# Jaw angle (rad) at which the two fingertip pads are parallel and one cube width (40 mm) apart.
GRASP_JAW_ANGLE = 0.46
_DOWN = np.array([0.0, 0.0, -1.0])
# Orientation residuals are traded against position in metres: 1 rad of tilt ~ 5 cm of position error.
_ORIENTATION_WEIGHT = 0.05
_FD_EPS = 1e-5
# Residuals this close (m; ~1 mm or ~0.02 rad of tilt) count as the same grasp when choosing the wrist roll.
_EQUIVALENT_COST = 1e-3


class TopDownIK:
    """Solves arm joint angles that put the point between the jaws at a target, jaws vertical.

    The gripper points straight down and the jaws close along world y, so they straddle an
    axis-aligned cube. Kinematics only: the sim's own MjData is never touched.
    """

    def __init__(self, model: mujoco.MjModel) -> None:
        """Precompute joint addresses and the grasp point in the gripper body frame."""
        self._model = model
        self._data = mujoco.MjData(model)
        self._qpos_adr = np.array([model.joint(n).qposadr[0] for n in ARM_JOINTS])
        self._gripper_adr = model.joint('gripper').qposadr[0]
        self._limits = np.array([model.jnt_range[model.joint(n).id] for n in ARM_JOINTS])
        self._gripper_body = model.body('gripper').id
        self._site = model.site('gripperframe').id
        self._data.qpos[self._gripper_adr] = GRASP_JAW_ANGLE
        mujoco.mj_kinematics(model, self._data)
        fixed_pad, moving_pad = (self._data.geom_xpos[model.geom(n).id].copy() for n in JAW_PADS)
        rot = self._data.xmat[self._gripper_body].reshape(3, 3)
        self._grasp_offset = rot.T @ ((fixed_pad + moving_pad) / 2 - self._data.xpos[self._gripper_body])
        self._jaw_axis = rot.T @ ((moving_pad - fixed_pad) / np.linalg.norm(moving_pad - fixed_pad))

    def grasp_point(self, arm_q: np.ndarray) -> np.ndarray:
        """World position of the point between the jaws for the given 5 arm angles."""
        self._forward(arm_q)
        return self._grasp_point_now()

    def jaw_axis(self, arm_q: np.ndarray) -> np.ndarray:
        """World unit vector from the fixed jaw's pad to the moving jaw's for the given 5 arm angles."""
        self._forward(arm_q)
        return self._data.xmat[self._gripper_body].reshape(3, 3) @ self._jaw_axis

    def _forward(self, arm_q: np.ndarray) -> None:
        self._data.qpos[self._qpos_adr] = arm_q
        mujoco.mj_kinematics(self._model, self._data)

    def _grasp_point_now(self) -> np.ndarray:
        rot = self._data.xmat[self._gripper_body].reshape(3, 3)
        return self._data.xpos[self._gripper_body] + rot @ self._grasp_offset

    def _residual(self, arm_q: np.ndarray, target: np.ndarray) -> np.ndarray:
        self._forward(arm_q)
        site_rot = self._data.site_xmat[self._site].reshape(3, 3)
        approach, jaw_axis = site_rot[:, 0], site_rot[:, 2]
        # Approach axis down; the jaw axis without x component is +-y (either side grips the cube).
        orientation = _ORIENTATION_WEIGHT * np.concatenate([approach - _DOWN, [jaw_axis[0]]])
        return np.concatenate([self._grasp_point_now() - target, orientation])

    def solve(self, target: np.ndarray, seed_q: np.ndarray, search_roll: bool = True) -> tuple[np.ndarray, float]:
        """Return (arm angles within joint limits, position error in m) for a target point.

        The wrist roll has several local optima (jaws along +y or -y, joint limits), so with search_roll the
        solve is also started from the seed with the roll turned by a half and a quarter turn. Of the solutions
        that reach the target, the one with the roll nearest the seed's is kept. Without search_roll the solve
        only continues from the seed: the grasp the wrist already has is kept, as a teleoperator would.
        """
        seed_q = np.asarray(seed_q, dtype=np.float64)
        candidates = []
        for roll_shift in (0.0, np.pi / 2, -np.pi / 2, np.pi, -np.pi) if search_roll else (0.0,):
            seed = seed_q.copy()
            seed[4] += roll_shift
            if not self._limits[4, 0] <= seed[4] <= self._limits[4, 1]:
                continue
            q = self._solve_from(target, seed)
            candidates.append((float(np.linalg.norm(self._residual(q, target))), q))
        best_cost = min(cost for cost, _ in candidates)
        equivalent = [q for cost, q in candidates if cost < best_cost + _EQUIVALENT_COST]
        best_q = min(equivalent, key=lambda q: abs(q[4] - seed_q[4]))
        return best_q, float(np.linalg.norm(self.grasp_point(best_q) - np.asarray(target)))

    def _solve_from(
        self, target: np.ndarray, seed_q: np.ndarray, iterations: int = 30, damping: float = 1e-4
    ) -> np.ndarray:
        q = np.clip(np.asarray(seed_q, dtype=np.float64).copy(), self._limits[:, 0], self._limits[:, 1])
        target = np.asarray(target, dtype=np.float64)
        for _ in range(iterations):
            r = self._residual(q, target)
            if np.linalg.norm(r) < 1e-5:
                break
            jac = np.empty((r.size, q.size))
            for j in range(q.size):  # finite differences: 5 cheap kinematics passes, no Jacobian algebra
                dq = q.copy()
                dq[j] += _FD_EPS
                jac[:, j] = (self._residual(dq, target) - r) / _FD_EPS
            step = np.linalg.solve(jac.T @ jac + damping * np.eye(q.size), -jac.T @ r)
            q = np.clip(q + np.clip(step, -0.5, 0.5), self._limits[:, 0], self._limits[:, 1])
        return q
