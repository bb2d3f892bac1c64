"""Recorder benchmark: synthetic cameras from another process into the recorder node, with and without the Fast DDS
shared-memory profile; dropped frames, camera messages received, save time, CPU and memory per process.

Run: python adamoe_ros/benchmarks/bench_recorder.py --cameras 3 --size 480x640 --seconds 60
For each transport, one run: the synthetic source (a camera driver's stand-in: --texture images, so PNG staging and
video encoding cost what real images cost) and the recorder node each in their own process, both started with the
profile (`shm`: FASTDDS_DEFAULT_PROFILES_FILE = config/fastdds_shm.xml) or with Fast DDS's built-in transports
(`default`). This process only calls the recorder's services and reads /proc. CPU is process CPU seconds per wall
second while recording (1.0 = one core); peak RSS is the process's high-water mark (VmHWM, the save included).
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import Trigger

from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.recorder.save_answer import saved_camera_counts, saved_frame_counts
from adamoe_ros.tools.synthetic_source import camera_topic
from adamoe_ros.transport import PROFILE_VARIABLES, shm_profile_environment

CLOCK_TICKS = os.sysconf('SC_CLK_TCK')


@dataclass
class RunResult:
    """The numbers of one run (one transport)."""

    transport: str
    frames: int
    dropped: int
    received: list[int]  # camera messages the recorder received during the episode, per camera
    published_hz: float  # the source's mean publish rate (ticks per second, each tick one image per camera)
    recording_s: float
    save_s: float
    cpu_recorder: float
    cpu_source: float
    rss_start_mb: float  # recorder RSS when the episode started
    rss_max_recording_mb: float  # highest recorder RSS sampled while recording (1 s period)
    peak_rss_recorder_mb: float
    peak_rss_source_mb: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (utime and stime of /proc/<pid>/stat)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int, field: str) -> float:
    """A memory line of /proc/<pid>/status (VmRSS, VmHWM) in MB."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def recorder_params(args: argparse.Namespace, cameras: list[str], root: Path) -> dict:
    """The recorder's parameter file: the synthetic cameras, joints and leader at the dataset rate."""
    return {
        '/**/recorder': {
            'ros__parameters': {
                'dataset_root': str(root),
                'fps': args.fps,
                'tolerance_s': min(0.05, 0.75 / args.fps),
                'camera_names': cameras,
                'camera_topics': [camera_topic(c) for c in cameras],  # where the source publishes
                'camera_types': ['image'] * len(cameras),
                'extra_state_topic': '',
                'parallel_encoding': args.parallel_encoding,
            }
        }
    }


def run_once(args: argparse.Namespace, transport: str, work: Path) -> RunResult:
    """Start source and recorder with the given transport, record one episode, save it, stop both."""
    cameras = [f'cam{i}' for i in range(args.cameras)]
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
    if transport == 'shm':
        env |= shm_profile_environment(env)
    params = work / f'{transport}_recorder.yaml'
    params.write_text(yaml.safe_dump(recorder_params(args, cameras, work / f'{transport}_dataset')))
    source_cmd = [sys.executable, '-m', 'adamoe_ros.tools.synthetic_source', '--rate', str(args.rate)]
    source_cmd += ['--size', args.size, '--texture', '--cameras', *cameras]
    source = subprocess.Popen(source_cmd, env=env, stdout=subprocess.PIPE, text=True)
    recorder_log = (work / f'{transport}_recorder.log').open('w')
    recorder = subprocess.Popen(
        [sys.executable, '-m', 'adamoe_ros.recorder.node', '--ros-args', '--params-file', str(params)],
        env=env,
        stdout=recorder_log,
        stderr=subprocess.STDOUT,
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('recorder_bench_client', context=context)
    start, save = (node.create_client(Trigger, f'recorder/{s}') for s in ('start', 'save'))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = ExecutorThread(executor).start()
    try:
        assert start.wait_for_service(timeout_sec=60), f'recorder services not up (log: {recorder_log.name})'
        time.sleep(3.0)  # discovery of the camera topics and the latched instruction
        response = start.call(Trigger.Request(), timeout_sec=30)
        assert response.success, response.message
        cpu0 = {pid: cpu_seconds(pid) for pid in (recorder.pid, source.pid)}
        wall0 = time.monotonic()
        rss_start = memory_mb(recorder.pid, 'VmRSS')
        rss_max = rss_start
        while time.monotonic() - wall0 < args.seconds:
            time.sleep(1.0)
            rss_max = max(rss_max, memory_mb(recorder.pid, 'VmRSS'))
        recording_s = time.monotonic() - wall0
        cpu = {pid: (cpu_seconds(pid) - cpu0[pid]) / recording_s for pid in cpu0}
        t0 = time.monotonic()
        response = save.call(Trigger.Request(), timeout_sec=1800)
        save_s = time.monotonic() - t0
        assert response.success, response.message
        peak_recorder, peak_source = (memory_mb(pid, 'VmHWM') for pid in (recorder.pid, source.pid))
    finally:
        spinner.stop()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        for process in (source, recorder):
            process.send_signal(signal.SIGTERM)
        published, _ = source.communicate(timeout=30)
        recorder.wait(timeout=60)
        recorder_log.close()
    frames, dropped = saved_frame_counts(response.message)
    received_per_camera = saved_camera_counts(response.message)
    received = [received_per_camera[c] for c in cameras]
    published_hz = float(re.search(r'\(([\d.]+) Hz\)', published).group(1))
    return RunResult(
        transport,
        frames,
        dropped,
        received,
        published_hz,
        recording_s,
        save_s,
        cpu[recorder.pid],
        cpu[source.pid],
        rss_start,
        rss_max,
        peak_recorder,
        peak_source,
    )


def table(results: list[RunResult], fps: int) -> str:
    """Markdown table, one column per transport, and the ratio of the second to the first."""
    rows = [
        ('frames saved (expected)', lambda r: f'{r.frames} ({round(r.recording_s * fps)})'),
        ('dropped frames', lambda r: f'{r.dropped} ({100 * r.dropped / max(1, r.frames + r.dropped):.1f} %)'),
        (
            'camera messages received / sent, per camera',
            lambda r: ' / '.join(str(n) for n in r.received) + f' of ~{round(r.published_hz * r.recording_s)}',
        ),
        ('save (service round trip)', lambda r: f'{r.save_s:.1f} s'),
        ('CPU recorder / source while recording', lambda r: f'{r.cpu_recorder:.2f} / {r.cpu_source:.2f} cores'),
        (
            'recorder RSS at start / max while recording',
            lambda r: f'{r.rss_start_mb:.0f} / {r.rss_max_recording_mb:.0f} MB',
        ),
        ('peak RSS recorder / source', lambda r: f'{r.peak_rss_recorder_mb:.0f} / {r.peak_rss_source_mb:.0f} MB'),
    ]
    lines = ['| | ' + ' | '.join(r.transport for r in results) + ' |', '| --- ' * (len(results) + 1) + '|']
    lines += [f'| {name} | ' + ' | '.join(cell(r) for r in results) + ' |' for name, cell in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run each transport once, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cameras', type=int, default=3)
    parser.add_argument('--size', default='480x640', help='HEIGHTxWIDTH of the camera images')
    parser.add_argument('--rate', type=float, default=30.0, help='source publish rate (Hz)')
    parser.add_argument('--fps', type=int, default=30, help='dataset fps')
    parser.add_argument('--seconds', type=float, default=60.0, help='episode length')
    parser.add_argument('--transports', nargs='+', choices=('shm', 'default'), default=['shm', 'default'])
    parser.add_argument('--parallel-encoding', action='store_true')
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix='recorder_bench_'))
    print(
        f'{args.cameras} cameras {args.size} rgb8 at {args.rate} Hz -> {args.fps} fps dataset, {args.seconds} s '
        f'episode, transports {args.transports}; files in {work}',
        flush=True,
    )
    results = []
    for transport in args.transports:
        results.append(run_once(args, transport, work))
        print(results[-1], flush=True)
    print(table(results, args.fps))


if __name__ == '__main__':
    main()
