"""Recorder node end to end: a 30 Hz synthetic source in another process (sim time), episodes via the services.

The source's values encode their stamps (state = t, action = t + 1000 but its last joint = the tick, image grey level
= tick % 32 * 8), so the reloaded dataset shows whether every frame's streams were taken at the same, evenly spaced
times.
"""

import concurrent.futures
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from process_support import stop
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.recorder.node import RecorderNode
from adamoe_ros.recorder.save_answer import saved_answer, saved_camera_counts, saved_frame_counts
from adamoe_ros.tools.synthetic_source import LEADER_OFFSET, SIM_START_S, grey_level
from adamoe_ros_interfaces.msg import RecorderStatus

FPS = 10
SOURCE_RATE = 30


def start_source(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            '-m',
            'adamoe_ros.tools.synthetic_source',
            '--rate',
            str(SOURCE_RATE),
            '--size',
            '64',
            '--sim-time',
            *extra,
        ]
    )


class Harness:
    """Recorder node + a client node on one executor thread, in a private context."""

    def __init__(self, root: Path, **params: object) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [
            Parameter('use_sim_time', value=True),
            Parameter('dataset_root', value=str(root)),
            Parameter('fps', value=FPS),
        ] + [Parameter(k, value=v) for k, v in params.items()]
        self.recorder = RecorderNode(context=self.context, parameter_overrides=overrides)
        self.client = Node('recorder_test_client', context=self.context)
        self.statuses: list[RecorderStatus] = []
        self.client.create_subscription(RecorderStatus, 'recorder/status', self.statuses.append, 10)
        self.executor = SingleThreadedExecutor(context=self.context)  # as node_main.py spins the recorder
        self.executor.add_node(self.recorder)
        self.executor.add_node(self.client)
        self.spinner = ExecutorThread(self.executor).start()

    def call(self, service: str) -> Trigger.Response:
        client = self.client.create_client(Trigger, f'recorder/{service}')
        assert client.wait_for_service(timeout_sec=10)
        response = client.call(Trigger.Request(), timeout_sec=60)
        self.client.destroy_client(client)
        return response

    def wait_sim_clock(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.recorder.get_clock().now().nanoseconds == 0:
            assert time.monotonic() < deadline, 'no /clock from the source'
            time.sleep(0.05)

    def wait_task(self, timeout: float = 20.0) -> None:
        """Until the recorder's status shows a task: the source's latched instruction has arrived."""
        deadline = time.monotonic() + timeout
        while not any(s.task for s in list(self.statuses)):
            assert time.monotonic() < deadline, 'no instruction reached the recorder'
            time.sleep(0.05)

    def close(self) -> None:
        self.spinner.stop()
        self.recorder.destroy_node()
        self.client.destroy_node()
        rclpy.shutdown(context=self.context)


def record_episode(harness: Harness, seconds: float) -> tuple[str, range]:
    """Record for `seconds`; return the save message and how many frame times the episode can have decided.

    The episode's frame times are t0 + k * period up to the save, on the recorder's (sim) clock, which runs slower
    than the wall clock when the source's timer skips periods: read that clock just outside and just inside the
    two service calls to bound the episode's window.
    """
    clock = harness.recorder.get_clock()
    period_ns = harness.recorder._aligner.period_ns
    before_start = clock.now().nanoseconds
    start = harness.call('start')
    assert start.success, start.message
    after_start = clock.now().nanoseconds
    time.sleep(seconds)
    before_save = clock.now().nanoseconds
    saved = harness.call('save')
    assert saved.success, saved.message
    after_save = clock.now().nanoseconds
    fewest = (before_save - after_start) // period_ns + 1
    most = (after_save - before_start) // period_ns + 1
    return saved.message, range(fewest, most + 1)


def load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset('local/so101_teleop', root=root, video_backend='pyav')


def episode_arrays(ds, episode: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    frames = [ds[i] for i in range(len(ds)) if int(ds.hf_dataset[i]['episode_index']) == episode]
    state = np.stack([f['observation.state'].numpy() for f in frames])
    action = np.stack([f['action'].numpy() for f in frames])
    grey = [round(float(f['observation.images.front'].mean()) * 255) for f in frames]
    return state, action, grey


def check_alignment(
    state: np.ndarray, action: np.ndarray, grey: list[int], dropped: int, tolerance: float, fps: int
) -> None:
    # The leader arm and the cameras publish every tick, so they give the source tick nearest to each frame time.
    t = action[:, 0] - LEADER_OFFSET
    leader = (t + LEADER_OFFSET)[:, None].repeat(action.shape[1] - 1, 1)
    np.testing.assert_allclose(action[:, :-1], leader, atol=1e-3)
    ticks = action[:, -1].astype(int)  # the leader's last joint is its tick, whose sim stamp is t
    np.testing.assert_allclose(SIM_START_S + ticks / SOURCE_RATE, t, atol=1e-3)
    np.testing.assert_allclose(state[:, :6], state[:, :1].repeat(6, 1), atol=1e-4)
    # Follower joint states have gaps: the nearest sample may be another tick, but within the tolerance.
    assert np.all(np.abs(state[:, 0] - t) <= tolerance + 1 / SOURCE_RATE / 2 + 1e-3), state[:, 0] - t
    # cube_x has no header: the recorder stamps it with the sim time of its publication (the /clock published just
    # before it), which is its value, so it is within the tolerance like the stamped follower.
    assert np.all(np.abs(state[:, 6] - t) <= tolerance + 1 / SOURCE_RATE / 2 + 1e-3), state[:, 6] - t
    np.testing.assert_allclose(state[:, 7], -state[:, 6], atol=1e-4)
    # Frames lie on a 10 Hz grid. A frame's action is the leader sample nearest its grid time: that tick, or a
    # neighbour tick within the tolerance when a best-effort sample was lost or late (under load), so t is the
    # grid time to within `slack` periods. Steps are whole periods up to that slack, and the grid points missing
    # between two saved frames, at least ceil(step - 2 * slack) - 1 of them, are all counted as dropped.
    slack = np.floor(tolerance * SOURCE_RATE + 1e-9) / SOURCE_RATE * fps
    steps = np.diff(t) * fps
    assert np.all(steps >= 1 - 2 * slack - 1e-2), steps
    assert np.all(np.abs(steps - np.round(steps)) <= slack + 1e-2), steps
    missing = np.maximum(np.ceil(steps - 2 * slack - 1e-2) - 1, 0)
    assert int(np.sum(missing)) <= dropped, (np.round(steps, 3).tolist(), dropped)
    # The saved frames span at most the grid points decided (saved + dropped) plus the slack at both ends.
    assert np.sum(steps) <= len(steps) + dropped + 2 * slack + 1e-2, (steps, dropped)
    # The camera frame is normally the one of the action's tick (grey level encodes tick % 32); a lost best-effort
    # image makes the aligner take a neighbour, which the tolerance allows up to 2 ticks away.
    image_ticks = np.round(np.array(grey) / 8).astype(int)
    offset = (image_ticks - ticks + 16) % 32 - 16
    assert np.all(np.abs(offset) <= 2), offset
    assert np.mean(offset == 0) >= 0.8, offset
    assert all(abs(g - grey_level(k)) <= 3 for g, k in zip(grey, image_ticks)), grey  # clean grey levels


@pytest.fixture
def source():
    proc = start_source('--gap-every', '45', '--gap-length', '6')  # 0.2 s without joint_states every 1.5 s
    yield proc
    stop(proc)


def test_three_episodes_with_discard_are_aligned_and_counted(tmp_path: Path, source: subprocess.Popen) -> None:
    root = tmp_path / 'ds'
    harness = Harness(root)
    try:
        harness.wait_sim_clock()
        harness.wait_task()
        first = record_episode(harness, 2.0)
        assert harness.call('start').success
        time.sleep(0.5)
        discarded = harness.call('discard')
        assert discarded.success and 'discarded' in discarded.message
        assert not harness.call('save').success  # nothing is recording any more
        second = record_episode(harness, 2.0)
        third = record_episode(harness, 2.0)
        time.sleep(0.6)
        statuses = list(harness.statuses)
    finally:
        harness.close()

    counts = [saved_frame_counts(m) for m, _ in (first, second, third)]
    assert sum(d for _, d in counts) > 0, 'the joint_states gaps must have rejected frames'
    for (frames, dropped), (_, frame_times) in zip(counts, (first, second, third), strict=True):
        # Every frame time of the recording window is either saved or counted as dropped.
        assert frames + dropped in frame_times, (counts, frame_times)
    assert statuses and statuses[-1].saved_episodes == 3 and not statuses[-1].recording
    assert max(s.frame_count for s in statuses) > 0

    config = harness.recorder.config
    ds = load(root)
    assert ds.meta.total_episodes == 3
    assert [ds.meta.episodes[i]['length'] for i in range(3)] == [f for f, _ in counts]
    assert ds.meta.features['observation.state']['names'][-3:] == ['cube_x', 'cube_y', 'cube_z']
    assert ds[0]['task'] == 'pick up the cube'
    for episode, (_, dropped) in enumerate(counts):
        check_alignment(*episode_arrays(ds, episode), dropped=dropped, tolerance=config.tolerance_s, fps=config.fps)


def test_start_refuses_without_instruction_or_task(tmp_path: Path) -> None:
    proc = start_source('--instruction', '')
    harness = Harness(tmp_path / 'ds', instruction_topic='no_instruction_here')
    try:
        harness.wait_sim_clock()
        response = harness.call('start')
        assert not response.success and 'default_task' in response.message
        assert not harness.call('discard').success
    finally:
        harness.close()
        stop(proc)
    assert not (tmp_path / 'ds').exists()  # nothing recorded, nothing written


def test_writer_backlog_is_bounded_and_its_overflow_counted(tmp_path: Path) -> None:
    proc = start_source()
    bound = 3
    harness = Harness(tmp_path / 'ds', write_queue_frames=bound)
    writer_free = threading.Event()
    try:
        harness.wait_sim_clock()
        harness.wait_task()
        harness.recorder._io.submit(writer_free.wait)  # the writer thread is busy (a slow disk): frames queue up
        assert harness.call('start').success
        deadline = time.monotonic() + (bound + 5) / FPS + harness.recorder.config.max_latency_s + 10.0
        while not any('write_queue_frames' in s.message for s in harness.statuses):
            assert time.monotonic() < deadline, 'no frame was dropped while the writer was blocked'
            time.sleep(0.05)
        overflow = next(s for s in harness.statuses if 'write_queue_frames' in s.message)
        writer_free.set()
        saved = harness.call('save')
    finally:
        writer_free.set()
        harness.close()
        stop(proc)
    # While the writer was blocked, exactly `bound` frames were accepted; the rest were counted, not queued.
    assert overflow.recording and overflow.frame_count == bound and overflow.dropped_frames >= 1, overflow
    assert saved.success, saved.message
    frames, dropped = saved_frame_counts(saved.message)
    assert dropped >= overflow.dropped_frames
    assert load(tmp_path / 'ds').meta.episodes[0]['length'] == frames


def test_a_frame_written_before_the_executor_goes_on_does_not_stall_the_recorder(tmp_path: Path) -> None:
    """The IO thread may finish a frame before the executor thread that queued it (holding the lock) goes on: on a
    loaded machine it does now and then, and the recorder once deadlocked there. Give it the time to, every frame
    (a write that needs the lock cannot finish meanwhile: the wait is bounded)."""
    proc = start_source()
    harness = Harness(tmp_path / 'ds')
    submit = harness.recorder._io.submit

    def submit_and_finish(fn, *args):  # noqa: ANN001, ANN202 (the worker's own signature)
        future = submit(fn, *args)
        concurrent.futures.wait([future], timeout=0.2 / FPS)
        return future

    harness.recorder._io.submit = submit_and_finish
    try:
        harness.wait_sim_clock()
        harness.wait_task()
        message, frame_times = record_episode(harness, 1.0)
    finally:
        harness.close()
        stop(proc)
    frames, dropped = saved_frame_counts(message)
    assert frames > 0 and frames + dropped in frame_times, (message, frame_times)


def test_save_answer_round_trips_its_counts_and_rejects_other_answers() -> None:
    answer = saved_answer(3, 117, 14, 0.99, {'front': 91, 'wrist': 90})
    assert saved_frame_counts(answer) == (117, 14)
    assert saved_camera_counts(answer) == {'front': 91, 'wrist': 90}
    for parse in (saved_frame_counts, saved_camera_counts):
        with pytest.raises(ValueError, match='not a recorder/save answer'):
            parse('episode not saved: the episode has no frames to save')
