"""So101PickPlaceSim without ROS: determinism, command safety, task detection, scripted expert, rendering."""

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from adamoe_ros.sim import SO101, So101PickPlaceSim
from adamoe_ros.sim.commands import CommandError, limit_step, trajectory_from_msg
from adamoe_ros.sim.expert_plan import run_scripted_episode
from adamoe_ros.sim.so101 import HOME_POSITION
from adamoe_ros.sim.task import TaskThresholds, evaluate

NS = 1_000_000_000


@pytest.fixture(scope='module')
def sim() -> So101PickPlaceSim:
    sim = So101PickPlaceSim()
    yield sim
    sim.close()


def test_joint_names_match_the_contract(sim: So101PickPlaceSim) -> None:
    assert SO101.joint_names == ('shoulder_pan', 'shoulder_lift', 'elbow_flex', 'wrist_flex', 'wrist_roll', 'gripper')
    assert [sim.model.joint(n).name for n in SO101.joint_names] == list(SO101.joint_names)


def rollout(sim: So101PickPlaceSim, seed: int) -> tuple[np.ndarray, np.ndarray]:
    start = sim.reset(seed)
    sim.set_joint_targets(HOME_POSITION + np.array([0.3, 0.4, -0.3, 0.2, 0.1, 0.5]))
    sim.step(200)
    return start, np.concatenate([sim.joint_positions(), sim.cube_position()])


def test_reset_is_deterministic_per_seed(sim: So101PickPlaceSim) -> None:
    first = rollout(sim, 7)
    again = rollout(sim, 7)
    other = rollout(sim, 8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert np.linalg.norm(first[0][:2] - other[0][:2]) > 1e-4
    assert sim.time == pytest.approx(200 * sim.dt)
    sim.advance(0.1)
    assert sim.time == pytest.approx(200 * sim.dt + 0.1)
    with pytest.raises(TypeError, match='advance'):
        sim.step(0.1)


def test_cube_positions_are_spread_and_on_the_table(sim: So101PickPlaceSim) -> None:
    cubes = np.array([sim.reset(seed) for seed in range(20)])
    assert np.ptp(cubes[:, 0]) > 0.05 and np.ptp(cubes[:, 1]) > 0.05
    np.testing.assert_allclose(cubes[:, 2], 0.02, atol=1e-3)
    assert np.all(np.linalg.norm(cubes[:, :2] - sim.goal_position()[:2], axis=1) >= 0.08)


def test_targets_are_clamped_and_nan_rejected_without_side_effects(sim: So101PickPlaceSim) -> None:
    sim.reset(0)
    applied = sim.set_joint_targets(np.full(6, 10.0))
    np.testing.assert_array_equal(applied, sim.joint_limits[:, 1])
    before = sim.joint_targets()
    with pytest.raises(ValueError, match='finite'):
        sim.set_joint_targets(np.array([0.0, np.nan, 0.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match='6 joint targets'):
        sim.set_joint_targets(np.zeros(5))
    np.testing.assert_array_equal(sim.joint_targets(), before)


def test_commanded_joints_reach_targets(sim: So101PickPlaceSim) -> None:
    sim.reset(1)
    target = np.array([0.4, 0.5, -0.4, 0.6, -0.5, 0.9])
    sim.set_joint_targets(target)
    sim.step(1000)
    np.testing.assert_allclose(sim.joint_positions(), target, atol=0.05)


def test_do_nothing_policy_does_not_succeed(sim: So101PickPlaceSim) -> None:
    sim.reset(3)
    sim.step(2500)
    status = sim.task_status()
    assert not status.success and not status.lifted
    assert status.cube_lift == pytest.approx(0.0, abs=2e-3)
    assert status.distance_to_goal > 0.05


def test_success_needs_lift_rest_and_release() -> None:
    thresholds = TaskThresholds()
    placed = dict(cube_lift=0.0, distance_to_goal=0.01, cube_speed=0.0, episode_time=5.0, thresholds=thresholds)
    assert evaluate(lifted=True, released=True, **placed).success
    assert not evaluate(lifted=False, released=True, **placed).success  # pushed, never carried
    assert not evaluate(lifted=True, released=False, **placed).success  # still in the jaws
    assert not evaluate(lifted=True, released=True, **{**placed, 'distance_to_goal': 0.05}).success
    assert not evaluate(lifted=True, released=True, **{**placed, 'cube_lift': 0.04}).success


def test_scripted_expert_success_rate_over_20_seeds(sim: So101PickPlaceSim) -> None:
    results = [run_scripted_episode(sim, seed) for seed in range(20)]
    # Measured 20/20 here; 18 leaves room for solver/platform float differences while still catching a
    # broken grasp, IK or success check (each of those fails most seeds).
    assert sum(r.success for r in results) >= 18, [r.message for r in results]
    assert all(r.lifted for r in results if r.success)


def test_render_is_not_blank_and_changes_when_the_arm_moves(sim: So101PickPlaceSim) -> None:
    sim.reset(2)
    sim.step(10)
    before = {cam: sim.render(cam, 64, 80) for cam in ('front', 'wrist')}
    sim.set_joint_targets(np.array([0.8, 0.8, -0.5, 1.0, 0.5, 1.2]))
    sim.step(600)
    for cam, frame in before.items():
        assert frame.shape == (64, 80, 3) and frame.dtype == np.uint8
        assert frame.std() > 10.0, f'{cam} frame is flat'
        after = sim.render(cam, 64, 80)
        assert np.abs(after.astype(int) - frame.astype(int)).mean() > 2.0, f'{cam} frame did not change'
    with pytest.raises(KeyError):
        sim.render('nonexistent')


def _trajectory(stamp_ns: int, names: list[str], points: list[tuple[float, list[float]]]) -> JointTrajectory:
    msg = JointTrajectory(joint_names=names)
    msg.header.stamp = Time(sec=stamp_ns // NS, nanosec=stamp_ns % NS)
    for t, positions in points:
        msg.points.append(
            JointTrajectoryPoint(
                positions=positions, time_from_start=Duration(sec=int(t), nanosec=int(round(t % 1 * NS)))
            )
        )
    return msg


LIMITS = np.array([[-2.0, 2.0]] * 6)


def test_trajectory_interpolates_from_current_targets_by_name() -> None:
    current = np.zeros(6)
    msg = _trajectory(0, ['elbow_flex', 'shoulder_pan'], [(1.0, [1.0, -1.0]), (2.0, [0.0, 5.0])])
    traj = trajectory_from_msg(msg, SO101.joint_names, current, LIMITS, now_ns=10 * NS)  # zero stamp: receipt time
    np.testing.assert_allclose(traj.sample(10 * NS + NS // 2), [-0.5, 0, 0.5, 0, 0, 0])
    np.testing.assert_allclose(traj.sample(11 * NS), [-1.0, 0, 1.0, 0, 0, 0])
    np.testing.assert_allclose(traj.sample(13 * NS), [2.0, 0, 0, 0, 0, 0])  # clamped to the limit, held
    assert traj.finished(12 * NS) and not traj.finished(11 * NS)


def test_trajectory_with_stamp_skips_past_points_and_rejects_bad_input() -> None:
    current = np.zeros(6)
    stamped = _trajectory(5 * NS, list(SO101.joint_names), [(1.0, [1.0] * 6), (3.0, [0.0] * 6)])
    traj = trajectory_from_msg(stamped, SO101.joint_names, current, LIMITS, now_ns=7 * NS)
    np.testing.assert_allclose(traj.sample(7 * NS), current)  # starts where the arm is commanded, no jump
    np.testing.assert_allclose(traj.sample(8 * NS), 0.0)
    with pytest.raises(CommandError, match='past'):
        trajectory_from_msg(stamped, SO101.joint_names, current, LIMITS, now_ns=9 * NS)
    with pytest.raises(CommandError, match='unknown'):
        trajectory_from_msg(_trajectory(0, ['elbow'], [(1.0, [0.0])]), SO101.joint_names, current, LIMITS, 0)
    with pytest.raises(CommandError, match='non-finite'):
        trajectory_from_msg(_trajectory(0, ['gripper'], [(1.0, [float('nan')])]), SO101.joint_names, current, LIMITS, 0)
    with pytest.raises(CommandError, match='increase'):
        trajectory_from_msg(
            _trajectory(0, ['gripper'], [(1.0, [0.1]), (1.0, [0.2])]), SO101.joint_names, current, LIMITS, 0
        )


def test_limit_step_bounds_each_joint_move() -> None:
    out = limit_step(np.zeros(3), np.array([1.0, -0.05, -2.0]), 0.1)
    np.testing.assert_allclose(out, [0.1, -0.05, -0.1])
