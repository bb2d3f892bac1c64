"""Recorder benchmark: synthetic cameras at 30 Hz into the recorder node; dropped frames, CPU and save time.

Run: python adamoe_ros/benchmarks/bench_recorder.py --cameras 3 --size 224 --seconds 60 --episodes 1
The source runs in its own process (like a robot driver); the recorder node and its writer thread run here, so
the CPU figure is the recorder's own (process CPU seconds per wall second, 1.0 = one core).
"""

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from adamoe_ros.recorder.node import RecorderNode


def _call(node: Node, client: object, timeout: float = 600.0) -> Trigger.Response:
    assert client.wait_for_service(timeout_sec=30), 'recorder services not available'
    return client.call(Trigger.Request(), timeout_sec=timeout)


def run(args: argparse.Namespace) -> None:
    """Record the episodes and print one line of numbers per episode."""
    cameras = [f'cam{i}' for i in range(args.cameras)]
    root = Path(tempfile.mkdtemp(prefix='recorder_bench_')) / 'ds'
    source = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'adamoe_ros.tools.synthetic_source',
            '--rate',
            str(args.rate),
            '--size',
            str(args.size),
            '--cameras',
            *cameras,
        ]
    )
    rclpy.init()
    recorder = RecorderNode(
        parameter_overrides=[
            Parameter('dataset_root', value=str(root)),
            Parameter('fps', value=args.fps),
            Parameter('tolerance_s', value=min(0.05, 0.75 / args.fps)),
            Parameter('camera_names', value=cameras),
            Parameter('camera_topics', value=[f'cameras/{c}/image_raw' for c in cameras]),
            Parameter('camera_types', value=['image'] * len(cameras)),
            Parameter('parallel_encoding', value=args.parallel_encoding),
            Parameter('extra_state_topic', value='sim/cube_position' if args.extra_state else ''),
        ]
    )
    client_node = Node('recorder_bench_client')
    start, save = (client_node.create_client(Trigger, f'recorder/{s}') for s in ('start', 'save'))
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    executor.add_node(client_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        time.sleep(3.0)  # discovery and the latched instruction
        print(
            f'{args.cameras} cameras {args.size}x{args.size} at {args.rate} Hz -> {args.fps} fps, '
            f'{args.seconds} s episodes, extra state {args.extra_state}',
            flush=True,
        )
        for episode in range(args.episodes):
            response = _call(client_node, start)
            assert response.success, response.message
            cpu0, wall0 = time.process_time(), time.monotonic()
            time.sleep(args.seconds)
            cpu_rec = (time.process_time() - cpu0) / (time.monotonic() - wall0)
            t0 = time.monotonic()
            response = _call(client_node, save)
            save_s = time.monotonic() - t0
            assert response.success, response.message
            frames, dropped = map(int, re.search(r'(\d+) frames, (\d+) dropped', response.message).groups())
            expected = round(args.seconds * args.fps)
            print(
                f'episode {episode}: frames {frames} (expected ~{expected}), dropped {dropped}, '
                f'recorder CPU {cpu_rec:.2f} cores while recording, save {save_s:.1f} s '
                f'(service round trip), peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB',
                flush=True,
            )
    finally:
        executor.shutdown()
        spinner.join(timeout=10)
        recorder.destroy_node()
        client_node.destroy_node()
        rclpy.shutdown()
        source.terminate()
        source.wait(timeout=10)
    print(f'dataset left at {root}')


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cameras', type=int, default=3)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--rate', type=float, default=30.0, help='source publish rate (Hz)')
    parser.add_argument('--fps', type=int, default=30, help='dataset fps')
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--episodes', type=int, default=1)
    parser.add_argument('--parallel-encoding', action='store_true')
    parser.add_argument(
        '--extra-state', action='store_true', help='also record sim/cube_position (headerless: stamped on receipt)'
    )
    run(parser.parse_args(argv))


if __name__ == '__main__':
    main()
