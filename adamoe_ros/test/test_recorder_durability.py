"""Durability: SIGKILL or SIGTERM of the recorder mid-episode loses only that episode; a restart appends (resume).

Runs recorder_node as a real subprocess on wall-clock time, fed by the synthetic source in another process.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger

from adamoe_ros.recorder.save_answer import saved_frame_counts
from adamoe_ros.tools.synthetic_source import LEADER_OFFSET

OFFSET = float(int(time.time()) - 60)  # keeps the encoded stamps small enough for float32


class ServiceCaller:
    """Trigger client in a private context, spun on demand."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('durability_test_client', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.clients = {
            name: self.node.create_client(Trigger, f'recorder/{name}') for name in ('start', 'save', 'discard')
        }

    def call(self, name: str, timeout: float = 60.0) -> Trigger.Response | None:
        """Call recorder/<name>; None when no answer came (a request can reach a just-killed server)."""
        client = self.clients[name]
        assert client.wait_for_service(timeout_sec=60.0), f'recorder/{name} never came up {self.node.get_node_names()}'
        future = client.call_async(Trigger.Request())
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            client.remove_pending_request(future)
            return None
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


class RecorderProcess:
    """recorder_node in a subprocess; its output is collected by a thread so readiness can be awaited."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                '-m',
                'adamoe_ros.recorder.node',
                '--ros-args',
                '-p',
                f'dataset_root:={root}',
                '-p',
                'fps:=10',
                '-p',
                'camera_names:=[front]',
                '-p',
                'camera_topics:=[cameras/front/image_raw]',
                '-p',
                'camera_types:=[image]',
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any('recording 10 fps into' in line for line in self.lines):
            assert self.proc.poll() is None, ''.join(self.lines)
            assert time.monotonic() < deadline, 'recorder did not come up: ' + ''.join(self.lines)
            time.sleep(0.1)

    def output(self) -> str:
        self._reader.join(timeout=10)
        return ''.join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_episode(caller: ServiceCaller, timeout: float = 40.0) -> None:
    # Right after a (re)start, discovery may still route requests to the killed process, and the latched
    # instruction may not have arrived yet (the recorder refuses then): retry until the new recorder answers.
    # A request can also start the episode while its answer comes after the 3 s or never (the server may not have
    # matched this client's reply reader yet; both are likelier on a busy machine). The retry then hears 'already
    # recording', and since the recorder was idle before this call, an unanswered request started that episode.
    deadline = time.monotonic() + timeout
    unanswered = False
    while True:
        start = caller.call('start', timeout=3.0)
        if start is not None and (start.success or 'no instruction' not in start.message):
            break
        unanswered |= start is None
        assert time.monotonic() < deadline, f'recorder did not start an episode: {start}'
        time.sleep(0.2)
    assert start.success or (unanswered and start.message == 'already recording'), start.message


def start_source() -> subprocess.Popen:
    """The synthetic teleop source in its own process: one 64x64 camera at 30 Hz, wall-clock stamps."""
    command = [sys.executable, '-m', 'adamoe_ros.tools.synthetic_source', '--rate', '30', '--size', '64']
    return subprocess.Popen([*command, '--cameras', 'front', '--offset', str(OFFSET)])


def record(caller: ServiceCaller, seconds: float, dropped: list[int] | None = None) -> int:
    """Record an episode; return its frame count (and append its dropped-frame count to `dropped`)."""
    start_episode(caller)
    time.sleep(seconds)
    saved = caller.call('save')
    assert saved is not None and saved.success, saved
    frames, dropped_frames = saved_frame_counts(saved.message)
    if dropped is not None:
        dropped.append(dropped_frames)
    return frames


def test_sigkill_mid_episode_keeps_saved_episodes_and_restart_appends(tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path / 'ds'
    source = start_source()
    recorder = RecorderProcess(root)
    caller = ServiceCaller()
    try:
        recorder.wait_ready()
        lengths = [record(caller, 1.0), record(caller, 1.0)]
        start_episode(caller)
        time.sleep(2.0)  # frames of the third episode are staged on disk now (more than the next episode has)
        os.kill(recorder.proc.pid, signal.SIGKILL)
        recorder.proc.wait(timeout=10)

        killed = LeRobotDataset('local/so101_teleop', root=root, video_backend='pyav')
        assert killed.meta.total_episodes == 2
        assert [killed.meta.episodes[i]['length'] for i in range(2)] == lengths
        assert len(killed) == sum(lengths)
        assert killed[len(killed) - 1]['observation.images.front'].shape == (3, 64, 64)  # video decodes

        recorder = RecorderProcess(root)
        recorder.wait_ready()
        third_dropped: list[int] = []
        lengths.append(record(caller, 1.0, third_dropped))
        # SIGTERM (what `ros2 launch` sends) mid-episode: the unsaved episode is discarded and the exit is clean.
        start_episode(caller)
        time.sleep(1.0)
        recorder.proc.send_signal(signal.SIGTERM)
        assert recorder.proc.wait(timeout=60) == 0, recorder.output()
    finally:
        caller.close()
        recorder.stop()
        source.kill()
        source.wait()
    output = recorder.output()

    assert '(2 episodes there)' in output, output
    ds = LeRobotDataset('local/so101_teleop', root=root, video_backend='pyav')
    assert ds.meta.total_episodes == 3
    assert [ds.meta.episodes[i]['length'] for i in range(3)] == lengths
    # The killed episode's staged frames were removed: episode 2's video holds only its own frames.
    assert not list(root.glob('images/**/*.png'))
    episode = ds.meta.episodes[2]
    duration = (
        episode['videos/observation.images.front/to_timestamp']
        - episode['videos/observation.images.front/from_timestamp']
    )
    assert abs(duration - lengths[2] / 10) < 0.05, (duration, lengths)
    # The appended episode continues the global index and is aligned like the others.
    third = [ds[i] for i in range(lengths[0] + lengths[1], len(ds))]
    assert [int(f['episode_index']) for f in third] == [2] * lengths[2]
    assert [int(f['index']) for f in third] == list(range(lengths[0] + lengths[1], len(ds)))
    t = np.array([float(f['action'][0]) for f in third]) - LEADER_OFFSET
    state = np.array([float(f['observation.state'][0]) for f in third])
    assert np.all(np.abs(state - t) <= 0.05 + 1e-3)
    # Every frame's action is within the 50 ms tolerance of its grid time (period 0.1 s), so consecutive frames
    # are at least 0 s apart and the whole episode spans at most its grid points (saved + dropped) plus 2 x 50 ms.
    assert np.all(np.diff(t) > 0), t
    assert t[-1] - t[0] <= (lengths[2] - 1 + third_dropped[0]) * 0.1 + 2 * 0.05 + 1e-3, (t, third_dropped)
    # The action's last joint is the source's tick index (its wall-clock stamps are not on a 30 Hz grid: they jitter
    # and the timer skips periods under load), the image's grey level is that tick % 32 * 8. Compare tick steps
    # between frames; a lost best-effort image makes the aligner take a neighbour tick, hence the slack of 2 ticks.
    ticks = np.array([int(f['action'][-1]) for f in third])
    grey = np.array([round(float(f['observation.images.front'].mean()) * 255) for f in third])
    image_steps = np.round(np.diff(grey) / 8).astype(int) % 32
    offset = (image_steps - np.diff(ticks) % 32 + 16) % 32 - 16
    assert np.all(np.abs(offset) <= 4), (grey, ticks)
    assert np.mean(offset == 0) >= 0.7, (grey, ticks)


def fill_disk(folder: Path) -> Path:
    """Write a file until the filesystem holding `folder` is full."""
    filler = folder / 'filler'
    with open(filler, 'wb', buffering=0) as f:
        try:
            while True:
                f.write(b'\0' * 4096)
        except OSError:
            pass
    return filler


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MiB tmpfs (needs CAP_SYS_ADMIN, which root has on the project's machines)."""
    mount_point = tmp_path / 'disk'
    mount_point.mkdir()
    mounted = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f'cannot mount a small tmpfs here: {mounted.stderr.strip()}')
    yield mount_point
    subprocess.run(['umount', '-l', str(mount_point)], check=False)


def test_disk_full_mid_episode_is_a_clear_error_and_keeps_saved_episodes(small_disk: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = small_disk / 'ds'
    source = start_source()
    recorder = RecorderProcess(root)
    caller = ServiceCaller()
    try:
        recorder.wait_ready()
        lengths = [record(caller, 1.0)]
        start_episode(caller)
        time.sleep(0.5)
        filler = fill_disk(small_disk)
        time.sleep(0.5)
        failed = caller.call('save')
        assert failed is not None and not failed.success, failed
        assert 'no space left on device' in failed.message, failed.message
        assert recorder.proc.poll() is None, recorder.output()
        filler.unlink()
        lengths.append(record(caller, 1.0))
        recorder.proc.send_signal(signal.SIGTERM)
        assert recorder.proc.wait(timeout=60) == 0, recorder.output()
    finally:
        caller.close()
        recorder.stop()
        source.kill()
        source.wait()
    ds = LeRobotDataset('local/so101_teleop', root=root, video_backend='pyav')
    assert ds.meta.total_episodes == 2
    assert [ds.meta.episodes[i]['length'] for i in range(2)] == lengths
    assert ds[len(ds) - 1]['observation.images.front'].shape == (3, 64, 64)
