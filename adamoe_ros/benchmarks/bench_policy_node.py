"""Benchmark of the policy node on this machine with the demo bundle, measured side by side in one run.

- ROS overhead: trigger-frame arrival to chunk publish, minus engine time (p50/p99).
- Command period jitter at 50 Hz: |period - 20 ms| (p50/p99), for a bare 50 Hz timer (baseline) and for
  the policy node while inference runs back to back (refill_threshold 1.0).
- CPU use of this process (node + executor) and of the input publisher process, % of one core.

Run: source scripts/env.sh && ROS_DOMAIN_ID=62 python adamoe_ros/benchmarks/bench_policy_node.py
"""
import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter

from adamoe_ros.policy.node import PolicyNode

PACKAGE = Path(__file__).resolve().parents[1]
PERIOD_S = 0.02


def jitter_ms(perf_ns: list[int]) -> np.ndarray:
    periods = np.diff(np.asarray(perf_ns, dtype=np.int64)) * 1e-9
    return np.abs(periods - PERIOD_S) * 1e3


def cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class BareTimer(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('bare_timer', **kwargs)
        self.ticks: list[int] = []
        self.create_timer(PERIOD_S, lambda: self.ticks.append(time.perf_counter_ns()))


def spin_phase(context: rclpy.Context, node: Node, seconds: float, activate: bool) -> tuple[float, float]:
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    if activate:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        time.sleep(1.0)  # warm-up: first chunks, queue filled
        node.command_perf_ns.clear()
        node.chunk_timings.clear()
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if activate:
        node.trigger_deactivate()
    executor.shutdown()
    thread.join(timeout=10)
    return cpu, wall


def pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float('nan')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=float, default=10.0, help='seconds per phase')
    parser.add_argument('--camera-rate', type=float, default=30.0)
    parser.add_argument('--size', type=int, nargs=2, default=[128, 128], metavar=('H', 'W'))
    args = parser.parse_args()
    total = 2 * args.duration + 6
    inputs = subprocess.Popen(
        [sys.executable, '-m', 'adamoe_ros.policy.fake_inputs', '--duration', str(total),
         '--camera-rate', str(args.camera_rate), '--height', str(args.size[0]), '--width', str(args.size[1])],
        env=dict(os.environ), stdout=subprocess.DEVNULL)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        time.sleep(1.0)
        timer = BareTimer(context=context)
        spin_phase(context, timer, args.duration, activate=False)
        baseline = jitter_ms(timer.ticks)
        timer.destroy_node()

        overrides = {
            'bundle_path': str(PACKAGE / 'adamoe_ros' / 'bundles' / 'so101_demo'),
            'joint_lower_limits': [-1.9, -1.7, -1.6, -1.6, -2.7, -0.1],
            'joint_upper_limits': [1.9, 1.7, 1.6, 1.6, 2.8, 1.7], 'max_joint_velocity': [2.0],
            'refill_threshold': 1.0, 'control_rate': 1.0 / PERIOD_S, 'publish_trajectory': True,
        }
        node = PolicyNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        inputs_cpu0 = cpu_seconds(inputs.pid)
        cpu, wall = spin_phase(context, node, args.duration, activate=True)
        inputs_cpu = cpu_seconds(inputs.pid) - inputs_cpu0
        timings = list(node.chunk_timings)
        commands = list(node.command_perf_ns)
        node.trigger_shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        inputs.kill()
        inputs.wait()

    overhead_ms = np.array([(t['arrival_to_publish_s'] - t['engine_s']) * 1e3 for t in timings])
    engine_ms = np.array([t['engine_s'] * 1e3 for t in timings])
    loaded = jitter_ms(commands)
    load = os.getloadavg()[0]
    print(f'machine: {os.cpu_count()} cores, 1-min load average {load:.2f} at the end')
    print(f'chunks: {len(timings)} in {wall:.1f} s; engine time p50 {pct(engine_ms, 50):.1f} ms, '
          f'p99 {pct(engine_ms, 99):.1f} ms')
    print(f'ROS overhead (frame arrival -> chunk publish - engine): p50 {pct(overhead_ms, 50):.2f} ms, '
          f'p99 {pct(overhead_ms, 99):.2f} ms')
    print(f'50 Hz period jitter, bare timer:              p50 {pct(baseline, 50):.2f} ms, '
          f'p99 {pct(baseline, 99):.2f} ms ({len(baseline)} periods)')
    print(f'50 Hz period jitter, policy node + inference: p50 {pct(loaded, 50):.2f} ms, '
          f'p99 {pct(loaded, 99):.2f} ms ({len(loaded)} periods)')
    print(f'jitter p99 ratio policy/bare: {pct(loaded, 99) / pct(baseline, 99):.2f}')
    print(f'CPU: policy process {100 * cpu / wall:.0f} % of one core, input publisher '
          f'{100 * inputs_cpu / wall:.0f} %')


if __name__ == '__main__':
    main()
