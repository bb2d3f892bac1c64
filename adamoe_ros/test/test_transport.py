"""The Fast DDS shared-memory profile: shipped, sized for camera frames, applied by every launcher unless the user
chose a profile, and doing its job: 640x480 images from another process reach the recorder in the runner."""

import ast
import functools
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import rclpy
import yaml
from process_support import stop
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger

from adamoe_ros.tools.synthetic_source import camera_topic
from adamoe_ros.transport import PROFILE_FILE, PROFILE_VARIABLES, shm_profile_environment, shm_profile_path
from adamoe_ros_interfaces.msg import RecorderStatus

PACKAGE = Path(__file__).resolve().parents[1]
INSTRUCTION = 'stack the frames'
FRAME_BYTES = 480 * 640 * 3  # one rgb8 frame of a real arm's camera
NS = {'dds': 'http://www.eprosima.com'}
STARTS_A_PROCESS = {'Node', 'LifecycleNode', 'OpaqueFunction'}  # launch actions that start (or make) nodes


def test_profile_is_shipped_and_holds_camera_sized_frames():
    assert shm_profile_path() == PACKAGE / 'config' / PROFILE_FILE
    assert "glob('config/*.xml')" in (PACKAGE / 'setup.py').read_text()  # installed to share/adamoe_ros/config
    root = ET.parse(shm_profile_path()).getroot()
    descriptors = list(root.iterfind('.//dds:transport_descriptor', NS))
    shm = [d for d in descriptors if d.findtext('dds:type', namespaces=NS) == 'SHM']
    assert len(shm) == 1
    assert int(shm[0].findtext('dds:maxMessageSize', namespaces=NS)) > FRAME_BYTES  # a frame in one piece
    # Three cameras with the sensor QoS depth (5) in flight at once.
    assert int(shm[0].findtext('dds:segment_size', namespaces=NS)) >= 3 * 5 * FRAME_BYTES
    participant = root.find('.//dds:participant', NS)
    assert participant.get('is_default_profile') == 'true'  # applies to every participant of the process
    used = {t.text for t in participant.iterfind('.//dds:userTransports/dds:transport_id', NS)}
    kinds = {d.findtext('dds:transport_id', namespaces=NS): d.findtext('dds:type', namespaces=NS) for d in descriptors}
    assert shm[0].findtext('dds:transport_id', namespaces=NS) in used
    assert 'UDPv4' in {kinds[t] for t in used}  # nodes on other hosts are not cut off


def test_a_profile_the_user_chose_wins():
    path = str(shm_profile_path())
    assert shm_profile_environment({}) == {'FASTDDS_DEFAULT_PROFILES_FILE': path}
    for name in PROFILE_VARIABLES:
        assert shm_profile_environment({name: '/home/me/my_profile.xml'}) == {}
        assert shm_profile_environment({name: ''}) == {}  # set to '': the user wants Fast DDS's defaults


def launch_description_items(path: Path) -> list[ast.expr]:
    """The elements of the list passed to LaunchDescription([...]) in a launch file."""
    calls = [
        n
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'LaunchDescription'
    ]
    assert len(calls) == 1 and isinstance(calls[0].args[0], ast.List), path.name
    return calls[0].args[0].elts


def sets_the_profile(item: ast.expr) -> bool:
    """*(SetEnvironmentVariable(name, value) for name, value in shm_profile_environment().items())."""
    if not (isinstance(item, ast.Starred) and isinstance(item.value, ast.GeneratorExp)):
        return False
    names = {getattr(n.func, 'id', getattr(n.func, 'attr', '')) for n in ast.walk(item) if isinstance(n, ast.Call)}
    return {'SetEnvironmentVariable', 'shm_profile_environment'} <= names


def test_every_launch_file_sets_the_profile_before_it_starts_a_node():
    files = sorted((PACKAGE / 'launch').glob('*.launch.py'))
    assert len(files) == 4
    for path in files:
        items = launch_description_items(path)
        setters = [i for i, item in enumerate(items) if sets_the_profile(item)]
        starters = [
            i
            for i, item in enumerate(items)
            if isinstance(item, ast.Call) and getattr(item.func, 'id', '') in STARTS_A_PROCESS
        ]
        assert len(setters) == 1 and starters, path.name
        # Launch runs its actions in order: a variable set after a process started does not reach it.
        assert setters[0] < min(starters), path.name


def fastdds_segments(pid: int) -> dict[str, int]:
    """The Fast DDS shared-memory segments a process has mapped, name to size (from /proc/<pid>/maps).

    A participant maps its own segment, and the segment of each writer that sends to it through shared memory.
    """
    segments = {}
    for line in Path(f'/proc/{pid}/maps').read_text().splitlines():
        if match := re.search(r'/dev/shm/(fastdds_[0-9a-f]+)$', line):
            start, end = (int(v, 16) for v in line.split()[0].split('-'))
            segments[match.group(1)] = end - start
    return segments


@functools.cache
def profile_segment_bytes() -> int:
    """The shared-memory segment size the shipped profile sets (read once: the segment polls call it)."""
    root = ET.parse(shm_profile_path()).getroot()
    return max(int(size.text) for size in root.iterfind('.//dds:transport_descriptor/dds:segment_size', NS))


def large_segments(pid: int) -> set[str]:
    """The segments of the profile's size a process has mapped (the built-in transports map 512 KiB ones)."""
    return {name for name, size in fastdds_segments(pid).items() if size >= profile_segment_bytes()}


def wait_for_large_segments(pid: int, timeout_s: float = 60.0) -> set[str]:
    """large_segments(pid) once there is one, or the empty set after timeout_s (a process is slow to start)."""
    deadline = time.monotonic() + timeout_s
    while not (found := large_segments(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (from /proc/<pid>/stat)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def test_runner_applies_the_profile_and_camera_sized_frames_arrive(tmp_path):
    cameras = ['cam0', 'cam1', 'cam2']
    fps, seconds = 10, 3.0
    config = tmp_path / 'record.runner.yaml'
    parameters = {
        'dataset_root': str(tmp_path / 'ds'),
        'fps': fps,
        'camera_names': cameras,
        'camera_topics': [camera_topic(c) for c in cameras],  # where the source publishes
        'camera_types': ['image'] * len(cameras),
        'extra_state_topic': '',
    }
    config.write_text(yaml.safe_dump({'nodes': [{'executable': 'recorder_node', 'parameters': parameters}]}))
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
    runner = subprocess.Popen([sys.executable, '-m', 'adamoe_ros.runner', str(config)], env=env)
    # The runner's own segment, before any other participant with the profile runs: the profile's size says it
    # loaded the profile, and the source's segment is then the large one that is not the runner's.
    runner_own = wait_for_large_segments(runner.pid)
    assert runner_own, 'the runner did not load the profile (no shared-memory segment of its size)'
    # The camera driver's side: started with the profile, as the launch files and an exported variable do.
    source_env = env | shm_profile_environment({})
    stamps = tmp_path / 'source_stamps.txt'
    source = subprocess.Popen(
        [sys.executable, '-m', 'adamoe_ros.tools.synthetic_source', '--size', '480x640', '--cameras', *cameras]
        + ['--instruction', INSTRUCTION, '--stamps', str(stamps)],
        env=source_env,
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('transport_test_client', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        start, save = (node.create_client(Trigger, f'recorder/{s}') for s in ('start', 'save'))
        assert start.wait_for_service(timeout_sec=60), 'the runner did not start the recorder'
        # The source's instruction (latched) has reached the recorder: its participant and topics are discovered.
        statuses: list[RecorderStatus] = []
        node.create_subscription(RecorderStatus, 'recorder/status', statuses.append, 10)
        discovered = time.monotonic() + 60
        while not any(s.task == INSTRUCTION for s in statuses) and time.monotonic() < discovered:
            executor.spin_once(timeout_sec=0.1)
        assert any(s.task == INSTRUCTION for s in statuses), "the source's instruction never reached the recorder"
        future = start.call_async(Trigger.Request())
        executor.spin_until_future_complete(future, timeout_sec=30)
        assert future.result().success, future.result().message
        # The recorder (system clock, as the source's stamps) starts before it answers and stops after the save
        # request comes: this window lies inside its recording window.
        window_start, cpu_start = time.time_ns(), cpu_seconds(runner.pid)
        time.sleep(seconds)
        window_end, cpu_end = time.time_ns(), cpu_seconds(runner.pid)
        source_own = large_segments(source.pid) - runner_own
        runner_mapped = set(fastdds_segments(runner.pid))
        future = save.call_async(Trigger.Request())
        executor.spin_until_future_complete(future, timeout_sec=300)
        response = future.result()
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        try:
            stop(source)
        finally:
            stop(runner)
    assert response.success, response.message
    # The source's frames reach the runner through the source's shared-memory segment, not UDP.
    assert source_own and source_own <= runner_mapped, f'the runner mapped {runner_mapped}, not {source_own}'
    received = {c: int(n) for c, n in re.findall(r'\b(cam\d) (\d+)', response.message.split('received:')[1])}
    # Every camera delivered nearly every image the source published while recording (the default transports lost
    # 40-60 % at this size): the ticks it stamped inside the window, not its rate times the time, which counted a
    # source starved of CPU as images lost.
    published = [int(line) for line in stamps.read_text().split()]
    expected = sum(window_start <= stamp <= window_end for stamp in published)
    assert expected > 0, 'the source published nothing while recording'
    # A shortfall with shared memory in use is the recorder starved of CPU: the message says how much it got.
    cpu_share = (cpu_end - cpu_start) / ((window_end - window_start) / 1e9)
    assert all(n >= 0.9 * expected for n in received.values()), (received, expected, f'recorder CPU {cpu_share:.0%}')
    assert set(received) == set(cameras)
