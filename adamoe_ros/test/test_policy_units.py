"""Unit tests of the policy node's pure parts: chunk queue, safety filter, input validation, buffer."""

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image, JointState

from adamoe_ros.joint_state import JointStateError, JointStateMatcher
from adamoe_ros.policy.chunk_queue import ActionQueue
from adamoe_ros.policy.commander import Commander
from adamoe_ros.policy.inputs import (
    EXTRA_STATE_STREAM,
    INSTRUCTION_STREAM,
    JOINT_STATE_STREAM,
    ObservationBuffer,
    StreamLimits,
    camera_stream,
)
from adamoe_ros.policy.safety import SafetyFilter, UnsafeCommandError
from adamoe_ros.policy.timing import NodeTimings
from adamoe_ros.policy.validation import (
    InputRejectedError,
    check_camera_image,
    check_extra_state,
    check_instruction,
)
from adamoe_ros.ros_image import numpy_to_image

MS = 1_000_000
DT = 100 * MS


def ramp_chunk(horizon: int, dim: int, offset: float = 0.0) -> np.ndarray:
    return offset + np.arange(horizon, dtype=np.float64)[:, None] * np.ones((1, dim))


# ---- chunk queue ---------------------------------------------------------------------------


def test_chunk_action_zero_is_meant_for_its_observation_time():
    # As recorded: a dataset frame's action is the command sent at that frame's time (the aligner's nearest stamp),
    # so the action a policy predicts first is for the moment of its observation, not one period later.
    np.testing.assert_array_equal(ActionQueue.chunk_times(5 * MS, DT, 3), [5 * MS, 105 * MS, 205 * MS])
    queue = ActionQueue(1, 'latest')
    queue.merge(ramp_chunk(3, 1), start_ns=0, dt_ns=DT)
    assert queue.sample(0)[0] == 0.0
    np.testing.assert_allclose(queue.sample(50 * MS), [0.5])


def test_queue_drops_past_actions_and_interpolates():
    queue = ActionQueue(2, 'latest')
    queue.merge(ramp_chunk(4, 2), start_ns=DT, dt_ns=DT)  # actions at 100, 200, 300, 400 ms
    assert queue.remaining(150 * MS) == 3
    np.testing.assert_allclose(queue.sample(150 * MS), [0.5, 0.5])
    np.testing.assert_allclose(queue.sample(300 * MS), [2.0, 2.0])
    assert queue.remaining(300 * MS) == 1
    assert queue.sample(401 * MS) is None  # ran out: no extrapolation
    assert queue.remaining(0) == 0


def test_queue_before_first_action_interpolates_from_last_sample():
    queue = ActionQueue(1, 'latest')
    queue.merge(np.zeros((3, 1)), start_ns=DT, dt_ns=DT)
    assert queue.sample(100 * MS)[0] == 0.0  # anchor at t=100ms, value 0
    queue.merge(np.full((3, 1), 10.0), start_ns=300 * MS, dt_ns=DT)  # first new action at 300 ms
    np.testing.assert_allclose(queue.sample(200 * MS), [5.0])  # halfway from anchor to first action


def test_latest_replaces_blend_mixes_overlap():
    latest = ActionQueue(1, 'latest')
    blend = ActionQueue(1, 'blend', blend_new_weight=0.25)
    for queue in (latest, blend):
        queue.merge(np.zeros((4, 1)), start_ns=DT, dt_ns=DT)  # 100..400 ms
        queue.merge(np.full((4, 1), 8.0), start_ns=300 * MS, dt_ns=DT)  # 300..600 ms
    times, actions = latest.future(0)
    np.testing.assert_array_equal(times, [300 * MS, 400 * MS, 500 * MS, 600 * MS])
    np.testing.assert_allclose(actions[:, 0], [8, 8, 8, 8])
    _, blended = blend.future(0)
    np.testing.assert_allclose(blended[:, 0], [2, 2, 8, 8])  # overlap at 300, 400 ms: 0.75*0 + 0.25*8


def test_rtc_prefix_resamples_remaining_actions_on_new_grid():
    queue = ActionQueue(1, 'rtc')
    queue.merge(ramp_chunk(6, 1), start_ns=DT, dt_ns=DT)  # values 0..5 at 100..600 ms
    queue.sample(250 * MS)
    prefix = queue.rtc_prefix(start_ns=350 * MS, dt_ns=DT, horizon=6, delay_steps=2)
    # new grid 350, 450, 550 ms lie inside the old queue (ends at 600 ms)
    np.testing.assert_allclose(prefix.actions[:, 0], [2.5, 3.5, 4.5])
    assert prefix.inference_delay == 2
    assert queue.rtc_prefix(start_ns=200 * MS, dt_ns=DT, horizon=6, delay_steps=9).inference_delay == 5
    assert queue.rtc_prefix(start_ns=100 * MS, dt_ns=DT, horizon=6, delay_steps=1) is None  # grid starts before queue
    queue.clear()
    assert queue.rtc_prefix(start_ns=0, dt_ns=DT, horizon=6, delay_steps=1) is None


def test_queue_refuses_chunks_planned_before_a_clear():
    queue = ActionQueue(1, 'latest')
    plan = queue.generation
    assert queue.merge(np.zeros((3, 1)), start_ns=DT, dt_ns=DT, generation=plan)
    queue.clear()  # e.g. an input went stale while the next chunk was being planned
    assert not queue.merge(np.ones((3, 1)), start_ns=DT, dt_ns=DT, generation=plan)
    assert queue.remaining(0) == 0
    assert queue.merge(np.ones((3, 1)), start_ns=DT, dt_ns=DT, generation=queue.generation)


def test_queue_rejects_bad_mode_and_shape():
    with pytest.raises(ValueError, match='execution_mode'):
        ActionQueue(2, 'fastest')
    with pytest.raises(ValueError, match='blend_new_weight'):
        ActionQueue(2, 'blend', blend_new_weight=1.5)
    with pytest.raises(ValueError, match='shape'):
        ActionQueue(2, 'rtc').merge(np.zeros((4, 3)), 0, DT)


# ---- safety filter -------------------------------------------------------------------------


def make_filter() -> SafetyFilter:
    return SafetyFilter(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), np.array([1.0]))


def test_safety_clamps_position_and_step():
    safety = make_filter()
    np.testing.assert_allclose(safety.limit([5.0, -5.0], [0.9, -1.9], 1.0), [1.0, -2.0])
    np.testing.assert_allclose(safety.limit([1.0, 1.0], [0.0, 0.0], 0.02), [0.02, 0.02])  # 1 rad/s * 20 ms


def test_safety_ramps_from_measured_position():
    safety = make_filter()
    command = np.array([-0.5, -1.5])  # measured
    steps = 0
    while not np.allclose(command, [0.5, 1.0]):
        new = safety.limit([0.5, 1.0], command, 0.1)
        assert np.all(np.abs(new - command) <= 0.1 + 1e-12)
        command, steps = new, steps + 1
    assert steps == 25  # 2.5 rad on joint 2 at 0.1 rad per step


def test_safety_refuses_non_finite():
    safety = make_filter()
    with pytest.raises(UnsafeCommandError):
        safety.limit([np.nan, 0.0], [0.0, 0.0], 0.02)
    with pytest.raises(UnsafeCommandError):
        safety.limit([0.0, 0.0], [np.inf, 0.0], 0.02)
    with pytest.raises(UnsafeCommandError):
        safety.limit([0.0, 0.0, 0.0], [0.0, 0.0], 0.02)


def test_safety_rejects_bad_limits():
    with pytest.raises(ValueError, match='below'):
        SafetyFilter(np.array([1.0]), np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match='positive'):
        SafetyFilter(np.array([0.0]), np.array([1.0]), np.array([0.0]))
    with pytest.raises(ValueError, match='finite'):
        SafetyFilter(np.array([-np.inf]), np.array([1.0]), np.array([1.0]))


def test_safety_sequence_respects_velocity_between_points():
    safety = make_filter()
    targets = np.array([[1.0, 2.0]] * 5)
    out = safety.limit_sequence(targets, np.zeros(2), np.full(5, 0.1))
    np.testing.assert_allclose(out[:, 0], [0.1, 0.2, 0.3, 0.4, 0.5])


# ---- validation ----------------------------------------------------------------------------


def test_camera_image_checks():
    rgb = np.random.default_rng(0).integers(0, 255, (8, 10, 3), dtype=np.uint8)
    np.testing.assert_array_equal(check_camera_image(numpy_to_image(rgb, 'rgb8'), 64).rgb(), rgb)
    bgr = numpy_to_image(rgb[..., ::-1], 'bgr8')
    np.testing.assert_array_equal(check_camera_image(bgr, 64).rgb(), rgb)
    with pytest.raises(InputRejectedError, match='exceeds'):
        check_camera_image(numpy_to_image(rgb, 'rgb8'), 9)
    bad = numpy_to_image(rgb, 'rgb8')
    bad.encoding = 'yuv422_weird'
    with pytest.raises(InputRejectedError, match='encoding'):
        check_camera_image(bad, 64)
    short = numpy_to_image(rgb, 'rgb8')
    short.data = short.data[:-3]
    with pytest.raises(InputRejectedError, match='does not match'):
        check_camera_image(short, 64)
    depth = numpy_to_image(np.zeros((4, 4), np.float32), '32FC1')
    with pytest.raises(InputRejectedError, match='not a colour'):
        check_camera_image(depth, 64)
    garbage = CompressedImage(format='jpeg', data=b'not a jpeg at all')
    with pytest.raises(InputRejectedError):
        check_camera_image(garbage, 64)
    assert isinstance(Image(), Image)


def test_compressed_image_decodes():
    import cv2

    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    ok, png = cv2.imencode('.png', rgb[..., ::-1])
    msg = CompressedImage(format='png', data=png.tobytes())
    np.testing.assert_array_equal(check_camera_image(msg, 64).rgb(), rgb)


def test_joint_state_matched_by_name():
    matcher = JointStateMatcher(['a', 'b', 'c'])
    msg = JointState(name=['c', 'a', 'b'], position=[3.0, 1.0, 2.0])
    np.testing.assert_allclose(matcher.positions(msg), [1.0, 2.0, 3.0])
    cases = {
        'missing': JointState(name=['a', 'b'], position=[1.0, 2.0]),
        'unknown': JointState(name=['a', 'b', 'c', 'z'], position=[1.0, 2.0, 3.0, 4.0]),
        'positions': JointState(name=['a', 'b', 'c'], position=[1.0, 2.0]),
        'velocity': JointState(name=['a', 'b', 'c'], position=[1.0, 2.0, 3.0], velocity=[0.0]),
        'duplicate': JointState(name=['a', 'b', 'b'], position=[1.0, 2.0, 3.0]),
        'non-finite': JointState(name=['a', 'b', 'c'], position=[1.0, float('nan'), 3.0]),
    }
    for problem, bad in cases.items():
        with pytest.raises(JointStateError, match=problem):
            matcher.positions(bad)
    lenient = JointStateMatcher(['a', 'b'], allow_extra_joints=True)
    np.testing.assert_allclose(lenient.positions(cases['unknown']), [1.0, 2.0])


def test_instruction_and_extra_state_checks():
    assert check_instruction('  pick the cube \n', 100) == 'pick the cube'
    for bad, problem in (('   ', 'empty'), ('x' * 101, 'exceeds'), ('a\x00b', 'control')):
        with pytest.raises(InputRejectedError, match=problem):
            check_instruction(bad, 100)
    np.testing.assert_allclose(check_extra_state([1.0, 2.0, 3.0], ['x', 'y', 'z']), [1, 2, 3])
    with pytest.raises(InputRejectedError, match='expected 3'):
        check_extra_state([1.0, 2.0], ['x', 'y', 'z'])
    with pytest.raises(InputRejectedError, match='non-finite'):
        check_extra_state([1.0, np.inf, 3.0], ['x', 'y', 'z'])


def test_stamp_rules():
    limits = StreamLimits(image_s=0.1, joint_state_s=0.05, extra_state_s=0.2, future_stamp_s=0.02)
    buffer = ObservationBuffer(['front'], num_extra=0, limits=limits)
    now = 1000 * MS
    buffer.put_measurement(JOINT_STATE_STREAM, 'a', stamp_ns=now, now_ns=now)
    buffer.put_measurement(JOINT_STATE_STREAM, 'b', stamp_ns=now, now_ns=now)  # same stamp: taken
    buffer.put_measurement(JOINT_STATE_STREAM, 'c', stamp_ns=now + 20 * MS, now_ns=now)  # within max_future_stamp
    for stamp, problem, rule in (
        (0, 'no header stamp', 'no_stamp'),
        (now + 20 * MS - 1, 'older than the newest', 'out_of_order'),
        (now + 41 * MS, 'ahead of the node clock', 'future_stamp'),
        (now - 51 * MS, 'beyond the maximum age', 'too_old'),
    ):
        with pytest.raises(InputRejectedError, match=problem) as refused:
            buffer.check_stamp(JOINT_STATE_STREAM, stamp_ns=stamp, now_ns=now + 20 * MS)  # what the node asks first
        assert refused.value.rule == rule
        with pytest.raises(InputRejectedError, match=problem) as refused:
            buffer.put_measurement(JOINT_STATE_STREAM, 'bad', stamp_ns=stamp, now_ns=now + 20 * MS)
        assert refused.value.rule == rule
    assert buffer.get(JOINT_STATE_STREAM) == 'c'  # nothing rejected changed the stream
    # A stamp ahead counts from its arrival: it buys no freshness.
    assert buffer.fresh(JOINT_STATE_STREAM, now + 50 * MS) == 'c'
    assert buffer.fresh(JOINT_STATE_STREAM, now + 51 * MS) is None
    # A restart reference must be measured since the given time.
    assert buffer.fresh(JOINT_STATE_STREAM, now + 10 * MS, measured_since_ns=now) == 'c'
    assert buffer.fresh(JOINT_STATE_STREAM, now + 10 * MS, measured_since_ns=now + 1) is None
    # After the clock jumped back, stamps of the old time line neither count as fresh nor order the new one.
    assert buffer.fresh(JOINT_STATE_STREAM, now - 1) is None
    buffer.put(INSTRUCTION_STREAM, 'go', now_ns=now)
    buffer.forget_measurements()
    assert buffer.get(JOINT_STATE_STREAM) is None and buffer.get(INSTRUCTION_STREAM) == 'go'
    buffer.put_measurement(JOINT_STATE_STREAM, 'new', stamp_ns=5 * MS, now_ns=5 * MS)
    assert buffer.fresh(JOINT_STATE_STREAM, 5 * MS) == 'new'


# ---- observation buffer --------------------------------------------------------------------


def test_buffer_staleness_and_snapshot():
    limits = StreamLimits(image_s=0.1, joint_state_s=0.05, extra_state_s=0.2, future_stamp_s=0.01)
    buffer = ObservationBuffer(['front'], num_extra=1, limits=limits)
    assert set(buffer.stale_streams(0)) == {'camera/front', JOINT_STATE_STREAM, EXTRA_STATE_STREAM, INSTRUCTION_STREAM}
    assert buffer.snapshot(0) is None
    image = np.zeros((4, 4, 3), np.uint8)
    buffer.put_measurement(camera_stream('front'), image, stamp_ns=1, now_ns=5)
    buffer.put_measurement(JOINT_STATE_STREAM, np.array([0.1, 0.2]), stamp_ns=10 * MS, now_ns=12 * MS)
    buffer.put(EXTRA_STATE_STREAM, np.array([3.0]), now_ns=1)
    buffer.put(INSTRUCTION_STREAM, 'go', now_ns=0)
    assert buffer.stale_streams(50 * MS) == []
    assert buffer.stale_streams(61 * MS) == [JOINT_STATE_STREAM]
    assert set(buffer.stale_streams(101 * MS)) == {'camera/front', JOINT_STATE_STREAM}
    assert buffer.snapshot(61 * MS) is None
    snap = buffer.snapshot(50 * MS)
    np.testing.assert_allclose(snap.state, [0.1, 0.2, 3.0])
    assert snap.state.dtype == np.float32 and snap.instruction == 'go'
    np.testing.assert_array_equal(snap.images['front'], image)


def test_camera_frames_are_converted_only_when_a_snapshot_takes_them():
    limits = StreamLimits(image_s=0.1, joint_state_s=0.1, extra_state_s=0.1, future_stamp_s=0.01)
    buffer = ObservationBuffer(['front'], num_extra=0, limits=limits)
    buffer.put_measurement(JOINT_STATE_STREAM, np.zeros(2), stamp_ns=MS, now_ns=MS)
    buffer.put(INSTRUCTION_STREAM, 'go', now_ns=0)
    timings = NodeTimings()
    rng = np.random.default_rng(1)
    frames = []
    for i in range(3):  # three BGR frames arrive before any inference
        rgb = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        msg = numpy_to_image(np.ascontiguousarray(rgb[..., ::-1]), 'bgr8')
        frame = check_camera_image(msg, 64)
        frames.append((rgb, frame))
        timings.frame_received('front', buffer.put_measurement(camera_stream('front'), frame, (i + 1) * MS, 5 * MS))
    assert all(frame._rgb is None for _, frame in frames)  # nothing converted on arrival
    snap = buffer.snapshot(5 * MS)
    np.testing.assert_array_equal(snap.images['front'], frames[-1][0])  # the newest, converted now
    assert [frame._rgb is None for _, frame in frames] == [True, True, False]
    assert timings.frames_received['front'] == 3 and timings.frames_unused['front'] == 2
    # A frame a snapshot took is not counted as unused when the next one replaces it.
    rgb8 = numpy_to_image(frames[0][0], 'rgb8')
    timings.frame_received(
        'front', buffer.put_measurement(camera_stream('front'), check_camera_image(rgb8, 64), 4 * MS, 5 * MS)
    )
    assert timings.frames_received['front'] == 4 and timings.frames_unused['front'] == 2
    # rgb8 needs no conversion: the snapshot holds a view of the message's own data, no copy.
    image = buffer.snapshot(5 * MS).images['front']
    assert np.shares_memory(image, np.frombuffer(rgb8.data, np.uint8))
    np.testing.assert_array_equal(image, frames[0][0])


# ---- commander -----------------------------------------------------------------------------


def make_commander(dry_run: bool = False) -> tuple[Commander, ActionQueue, ObservationBuffer]:
    queue = ActionQueue(2, 'latest')
    buffer = ObservationBuffer([], 0, StreamLimits(0.5, 0.25, 0.5, 0.1))
    safety = SafetyFilter(np.full(2, -10.0), np.full(2, 10.0), np.full(2, 1.0))  # 0.1 rad per 0.1 s tick
    return Commander(queue, safety, buffer, 0.1, dry_run), queue, buffer


def test_commander_ramps_from_a_measurement_taken_since_the_last_command():
    commander, queue, buffer = make_commander()
    queue.merge(np.full((4, 2), 5.0), start_ns=0, dt_ns=DT)
    assert commander.next_command(150 * MS) is None  # no measurement yet: nothing to ramp from
    buffer.put_measurement(JOINT_STATE_STREAM, np.zeros(2), 150 * MS, 150 * MS)
    np.testing.assert_allclose(commander.next_command(160 * MS), [0.1, 0.1])  # one velocity step
    np.testing.assert_allclose(commander.next_command(260 * MS), [0.2, 0.2])  # from the last command
    assert commander.commanding
    commander.stop_on_stale()
    assert commander.stale_events == 1 and not commander.commanding
    queue.merge(np.full((4, 2), 5.0), start_ns=300 * MS, dt_ns=DT)
    # The measurement of 150 ms predates the last command (260 ms): it does not show where the arm went.
    assert commander.next_command(350 * MS) is None
    buffer.put_measurement(JOINT_STATE_STREAM, np.full(2, 0.2), 340 * MS, 340 * MS)
    np.testing.assert_allclose(commander.next_command(360 * MS), [0.3, 0.3])
    commander.stop_on_stale()
    commander.stop_on_stale()
    assert commander.stale_events == 2  # counted once per stop of a flowing command stream


def test_commander_holds_at_the_fresh_measurement_once_and_never_in_a_dry_run():
    for dry_run in (False, True):
        commander, queue, buffer = make_commander(dry_run)
        assert commander.hold(0) is None  # never commanded
        queue.merge(np.full((4, 2), 1.0), start_ns=0, dt_ns=DT)
        buffer.put_measurement(JOINT_STATE_STREAM, np.zeros(2), 100 * MS, 100 * MS)
        commander.next_command(110 * MS)
        assert commander.commanding is not dry_run
        buffer.put_measurement(JOINT_STATE_STREAM, np.full(2, 0.05), 150 * MS, 150 * MS)
        hold = commander.hold(160 * MS)
        if dry_run:
            assert hold is None
        else:
            np.testing.assert_allclose(hold, [0.05, 0.05])
            assert commander.hold(170 * MS) is None  # once
