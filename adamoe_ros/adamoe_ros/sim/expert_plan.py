"""Scripted expert as a plain state machine: observations in, joint targets out, within the robot's limits.

One plan serves every task of tasks.SCENES: pick a cube and put it down where its centre rests once the task is
solved (on a goal disc, or on top of another cube), given by tasks.target_rest_position.

    python -m adamoe_ros.sim.expert_plan --scene multitask --seeds 120   # success per task, no ROS
"""

import argparse
import enum
from collections import deque
from dataclasses import dataclass, field

import mujoco
import numpy as np

from adamoe_contract.robots import RobotProfile
from adamoe_ros.closed_loop.stats import wilson_interval
from adamoe_ros.sim.ik import TopDownIK
from adamoe_ros.sim.robot import SO101
from adamoe_ros.sim.so101 import So101PickPlaceSim
from adamoe_ros.sim.task import TaskStatus
from adamoe_ros.sim.tasks import SCENES

SETTLE_AFTER_RELEASE_S = 0.5  # sim time a released cube needs to come to rest before the physics judges it


class Phase(enum.Enum):
    """Steps of one pick-and-place, in order."""

    HOVER = 0
    DESCEND = 1
    CLOSE = 2
    LIFT = 3
    TRAVERSE = 4
    LOWER = 5
    OPEN = 6
    RETREAT = 7
    DONE = 8


@dataclass(frozen=True)
class PlanSettings:
    """Heights (m above the cube's resting centre), speeds and timing of the scripted plan."""

    hover_height: float = 0.055
    # The pads pinch the upper half of the cube: the grasp point stops this far above its centre.
    grasp_height: float = 0.012
    # Only one jaw moves: centred on the cube, the fixed jaw's pad comes down flush with the cube's face, and a
    # few mm of error towards it land the pad on the cube's top (the arm stops 14 mm high and closes on air).
    # The grasp point comes down this far off the cube's centre on the fixed jaw's side, that pad clear of the
    # face; closing, the moving jaw pushes the cube against it.
    fixed_jaw_clearance: float = 0.010  # m
    carry_height: float = 0.055
    release_clearance: float = 0.004
    free_speed: float = 0.15  # m/s of the grasp-point target in free space
    careful_speed: float = 0.06  # m/s next to the cube
    position_tolerance: float = 0.008
    # The servos sag a few mm under gravity; once the target stopped moving, this long is enough to settle.
    settle_time: float = 0.5
    gripper_open: float = 1.0  # rad
    gripper_closed: float = -0.17  # rad; the cube stops the jaws at ~0.46 rad
    close_time: float = 0.8  # s the jaws get to close / open with the arm still
    open_time: float = 0.6
    phase_timeout: float = 4.0  # s; a moving phase ends even if the arm lags, so episodes always end
    # Demonstrations a policy can recover from (all off by default: the recorded datasets so far had none).
    # CLOSE ends once the jaws have stopped, so no frames of the arm waiting at the cube follow the grasp (a
    # policy seeing one frame cannot tell how long it has waited).
    close_until_stalled: bool = False
    stalled_jaw_step: float = 0.02  # rad per tick: jaws moving less have stopped
    # ... once they have moved: over a loaded ROS graph the close command reaches the arm some ticks late, and jaws
    # that have not started yet are not stopped (the arm would lift with them open).
    min_jaw_travel: float = 0.1  # rad
    # Jaws that closed past empty_jaws hold nothing (the cube stops them at ~0.46 rad): open, hover, try again.
    regrasp: bool = False
    empty_jaws: float = 0.2  # rad
    max_grasps: int = 3
    # DART-style disturbance: in this share of episodes the follower's first grasp is pushed off by a joint
    # offset (normal, this standard deviation on the four arm joints) that the recorded leader command does not
    # have, so the demonstrations show the leader's correction and, where the grasp misses, the regrasp.
    disturbance_probability: float = 0.0
    disturbance_scale: float = 0.05  # rad


# Demonstrations that show recovery: what `collect --recovery` records.
RECOVERY_SETTINGS = PlanSettings(close_until_stalled=True, regrasp=True, disturbance_probability=0.3)

_MOVING_PHASES = (Phase.HOVER, Phase.DESCEND, Phase.LIFT, Phase.TRAVERSE, Phase.LOWER, Phase.RETREAT)
_CAREFUL_PHASES = (Phase.DESCEND, Phase.LOWER)
_JAWS_CLOSED_PHASES = (Phase.CLOSE, Phase.LIFT, Phase.TRAVERSE, Phase.LOWER)
_GRASP_PHASES = (Phase.HOVER, Phase.DESCEND, Phase.CLOSE)
_ARM_JOINTS = 4  # shoulder_pan .. wrist_flex: the joints a disturbance pushes


class PickPlacePlan:
    """Hover, descend, close, lift, carry, lower, open, retreat; call act() once per control tick.

    Like a good teleoperator's, every command stays within the robot profile's position limits and moves each
    joint at most max_velocity * control_dt from the previous command (the first: from the measured joints).
    act() returns the leader's command (what a recorder stores as the action); follower_command is what the arm
    is sent, the same unless the settings ask for a disturbance.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        control_dt: float,
        settings: PlanSettings = PlanSettings(),  # noqa: B008
        robot: RobotProfile = SO101,
    ) -> None:
        """Use a kinematic copy of the sim model; control_dt is the time between act() calls."""
        self._ik = TopDownIK(model)
        self._dt = float(control_dt)
        self.settings = settings
        self._lower = np.asarray(robot.lower_limits, dtype=np.float64)
        self._upper = np.asarray(robot.upper_limits, dtype=np.float64)
        self._max_step = np.asarray(robot.max_velocity, dtype=np.float64) * self._dt
        self.reset()

    def reset(self, rng: np.random.Generator | None = None) -> None:
        """Start a new episode at the first phase; rng draws its disturbance (none without one)."""
        self.phase = Phase.HOVER
        self.grasps = 1  # the grasp attempt under way
        s = self.settings
        disturbed = rng is not None and s.disturbance_probability > 0 and rng.random() < s.disturbance_probability
        self.disturbance = np.zeros(len(self._lower))
        if disturbed:
            self.disturbance[:_ARM_JOINTS] = rng.normal(0.0, s.disturbance_scale, _ARM_JOINTS)
        self.follower_command: np.ndarray | None = None
        self._last_jaws: float | None = None
        self._jaws_at_phase_start = 0.0  # measured jaws when the phase began: CLOSE counts their travel from it
        self._phase_time = 0.0
        self._commanded_point: np.ndarray | None = None
        self._anchor: np.ndarray | None = None  # grasp point when the phase began
        self._settled_time = 0.0
        self._arm_command: np.ndarray | None = None  # the IK's solution (seeds the next solve)
        self._sent: np.ndarray | None = None  # the last command, rate limited
        self._table_z: float | None = None
        self._jaw_axis = np.zeros(3)  # fixed to moving jaw, measured each tick

    @property
    def done(self) -> bool:
        """True once the retreat after releasing the cube is finished."""
        return self.phase is Phase.DONE

    def _phase_target(self, grasp: np.ndarray, cube: np.ndarray, target: np.ndarray) -> np.ndarray:
        s, rest_z = self.settings, self._table_z
        # Carry and retreat heights count from the higher of table and target, so a stack top is cleared too.
        high_z = max(rest_z, float(target[2]))
        if self.phase in (Phase.HOVER, Phase.DESCEND):
            x, y, _ = cube - s.fixed_jaw_clearance * self._jaw_axis
            return np.array([x, y, rest_z + s.hover_height if self.phase is Phase.HOVER else cube[2] + s.grasp_height])
        if self.phase is Phase.LIFT:
            return np.array([self._anchor[0], self._anchor[1], high_z + s.carry_height + s.grasp_height])
        # While carrying, steer the cube (not the jaws) onto the target: a cube that slid in the jaws is
        # still placed accurately.
        offset = grasp - cube
        if self.phase is Phase.TRAVERSE:
            return np.array([target[0] + offset[0], target[1] + offset[1], high_z + s.carry_height + s.grasp_height])
        if self.phase is Phase.LOWER:
            return np.array([target[0] + offset[0], target[1] + offset[1], target[2] + s.release_clearance + offset[2]])
        return np.array([self._anchor[0], self._anchor[1], high_z + s.hover_height])  # RETREAT

    def act(self, joint_positions: np.ndarray, cube_position: np.ndarray, target_position: np.ndarray) -> np.ndarray:
        """Return the 6 joint targets for this tick from measured joints, the cube and its target rest position.

        target_position: where the cube's centre rests once placed (x, y, z; tasks.target_rest_position).
        """
        q = np.asarray(joint_positions, dtype=np.float64)
        cube = np.asarray(cube_position, dtype=np.float64)
        target = np.asarray(target_position, dtype=np.float64)
        if self._table_z is None:
            self._table_z = float(cube[2])
        grasp = self._ik.grasp_point(q[:5])
        self._jaw_axis = self._ik.jaw_axis(q[:5])
        if self._commanded_point is None:
            self._commanded_point, self._anchor, self._sent, self.follower_command = grasp, grasp, q.copy(), q.copy()
            # The grasp (wrist roll branch) is chosen once, for the first hover point, nearest the current roll;
            # every later solve continues from it, so the wrist never flips to the symmetric grasp mid-episode.
            self._arm_command, _ = self._ik.solve(self._phase_target(grasp, cube, target), q[:5])
        self._advance_phase(grasp, cube, target, jaws=float(q[-1]))
        s = self.settings
        if self.phase in _MOVING_PHASES:
            point = self._phase_target(grasp, cube, target)
            speed = s.careful_speed if self.phase in _CAREFUL_PHASES else s.free_speed
            step = point - self._commanded_point
            max_step = speed * self._dt
            if np.linalg.norm(step) > max_step:
                step *= max_step / np.linalg.norm(step)
            self._commanded_point = self._commanded_point + step
            self._arm_command, _ = self._ik.solve(self._commanded_point, self._arm_command, search_roll=False)
        gripper = s.gripper_closed if self.phase in _JAWS_CLOSED_PHASES else s.gripper_open
        self._phase_time += self._dt
        wanted = np.concatenate([self._arm_command, [gripper]])
        self._sent = self._limited_step(self._sent, wanted)
        # The follower carries the disturbance through the first grasp, then comes back within the same limits.
        pushed = self.grasps == 1 and self.phase in _GRASP_PHASES
        self.follower_command = self._limited_step(self.follower_command, self._sent + pushed * self.disturbance)
        return self._sent.copy()

    def _limited_step(self, previous: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        step = np.clip(wanted - previous, -self._max_step, self._max_step)
        return np.clip(previous + step, self._lower, self._upper)

    def _jaws_stopped(self, jaws: float, last_jaws: float | None) -> bool:
        s = self.settings
        moved = self._jaws_at_phase_start - jaws >= s.min_jaw_travel
        stopped = last_jaws is not None and abs(jaws - last_jaws) < s.stalled_jaw_step
        return s.close_until_stalled and moved and stopped

    def _advance_phase(self, grasp: np.ndarray, cube: np.ndarray, target: np.ndarray, jaws: float) -> None:
        s = self.settings
        last_jaws, self._last_jaws = self._last_jaws, jaws
        while self.phase is not Phase.DONE:
            if self.phase is Phase.CLOSE:
                finished = self._phase_time >= s.close_time or self._jaws_stopped(jaws, last_jaws)
                missed = s.regrasp and jaws < s.empty_jaws and self.grasps < s.max_grasps
                if finished and missed:
                    self.grasps += 1
                    self.phase = Phase.HOVER
                    self._phase_time = self._settled_time = 0.0
                    self._anchor = grasp.copy()
                    return
            elif self.phase is Phase.OPEN:
                finished = self._phase_time >= s.open_time
            else:
                point = self._phase_target(grasp, cube, target)
                command_arrived = np.linalg.norm(point - self._commanded_point) < 1e-3
                self._settled_time = self._settled_time + self._dt if command_arrived else 0.0
                reached = command_arrived and (
                    np.linalg.norm(point - grasp) < s.position_tolerance or self._settled_time >= s.settle_time
                )
                finished = reached or self._phase_time >= s.phase_timeout
            if not finished:
                return
            self.phase = Phase(self.phase.value + 1)
            self._phase_time = self._settled_time = 0.0
            self._anchor = grasp.copy()
            self._jaws_at_phase_start = jaws


@dataclass
class EpisodeTrace:
    """What run_scripted_episode sent, tick by tick.

    leader and follower begin with the measured start joints, then one entry per command; measured and phases have
    one entry per command (measured[i] is what the plan saw when it sent leader[i + 1]).
    """

    leader: list[np.ndarray] = field(default_factory=list)  # the action a recorder stores
    follower: list[np.ndarray] = field(default_factory=list)  # what the arm was sent
    measured: list[np.ndarray] = field(default_factory=list)  # the joints the plan saw at each command
    phases: list[Phase] = field(default_factory=list)  # the plan's phase at each command
    grasps: int = 0  # grasp attempts


def run_scripted_episode(
    sim: So101PickPlaceSim,
    seed: int,
    control_dt: float = 0.1,
    max_time: float = 30.0,
    settings: PlanSettings = PlanSettings(),  # noqa: B008
    trace: EpisodeTrace | None = None,
    command_delay: int = 0,
) -> TaskStatus:
    """Reset the sim with a seed, let the plan solve the seed's task directly, and return the final TaskStatus.

    The seed also draws the episode's disturbance, if the settings ask for any. trace, when given, is filled.
    command_delay: control ticks each command takes to reach the arm (as over a loaded ROS graph; 0: none).
    """
    sim.reset(seed)
    plan = PickPlacePlan(sim.model, control_dt, settings)
    plan.reset(np.random.default_rng(seed))
    trace = EpisodeTrace() if trace is None else trace
    trace.leader.append(sim.joint_positions())
    trace.follower.append(sim.joint_positions())
    steps_per_tick = max(int(round(control_dt / sim.dt)), 1)
    in_flight: deque[np.ndarray] = deque()
    while not plan.done and sim.time < max_time:
        measured = sim.joint_positions()
        trace.leader.append(plan.act(measured, sim.cube_position(), sim.target_position()))
        trace.follower.append(plan.follower_command)
        trace.measured.append(measured)
        trace.phases.append(plan.phase)
        in_flight.append(plan.follower_command)
        if len(in_flight) > command_delay:
            sim.set_joint_targets(in_flight.popleft())
        sim.step(steps_per_tick)
    trace.grasps = plan.grasps
    sim.step(int(round(SETTLE_AFTER_RELEASE_S / sim.dt)))
    return sim.task_status()


def main(argv: list[str] | None = None) -> None:
    """Success of the scripted expert per task over seeds, and its largest command step against the limits."""
    parser = argparse.ArgumentParser(description='scripted expert success per task (no ROS)')
    parser.add_argument('--scene', default='pick_place', choices=sorted(SCENES))
    parser.add_argument('--seeds', type=int, default=60, help='seeds 0.. (the seed picks the task)')
    parser.add_argument('--recovery', action='store_true', help='regrasp, close until stalled, disturb 30%%')
    parser.add_argument('--command-delay', type=int, default=0, help='control ticks a command takes to the arm')
    args = parser.parse_args(argv)
    settings = RECOVERY_SETTINGS if args.recovery else PlanSettings()
    sim = So101PickPlaceSim(scene=args.scene)
    max_step = np.asarray(SO101.max_velocity) * 0.1  # run_scripted_episode's control period
    wins: dict[str, list[bool]] = {}
    worst = 0.0
    grasps: list[int] = []
    try:
        for seed in range(args.seeds):
            trace = EpisodeTrace()
            status = run_scripted_episode(sim, seed, settings=settings, trace=trace, command_delay=args.command_delay)
            wins.setdefault(sim.task.name, []).append(status.success)
            grasps.append(trace.grasps)
            for commands in (trace.leader, trace.follower):
                worst = max(worst, float(np.max(np.abs(np.diff(commands, axis=0)) / max_step)))
            if not status.success:
                print(f'seed {seed} {sim.task.name}: {status.message}', flush=True)
    finally:
        sim.close()
    for task, results in wins.items():
        low, high = wilson_interval(sum(results), len(results))
        print(f'{task}: {sum(results)}/{len(results)} (95% CI {low:.0%}-{high:.0%})')
    print(f'grasps per episode: {dict(zip(*np.unique(grasps, return_counts=True), strict=True))}')
    print(f'largest command step: {worst:.2f} x the profile velocity limit')


if __name__ == '__main__':
    main()
