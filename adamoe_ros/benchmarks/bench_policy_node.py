"""Benchmark of the policy node on this machine with the demo bundle, measured side by side in one run.

- ROS overhead: trigger-frame arrival to chunk publish, minus engine time (p50/p99).
- Command period jitter at 50 Hz: |period - 20 ms| (p50/p99), for a bare 50 Hz timer (baseline) and for
  the policy node while inference runs back to back (refill_threshold 1.0).
- CPU use of this process (node + executor) and of the input publisher process, % of one core.
Phases run interleaved (bare timer, node with inference thread at nice 0, at nice 10) so that load from
other processes on a shared machine affects all of them alike.

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
from rclpy.executors import SingleThreadedExecutor
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
    executor = SingleThreadedExecutor(context=context)  # as policy_node main() runs it
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    if activate:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        time.sleep(1.0)  # warm-up: first chunks, queue filled
        node.timings.command_perf_ns.clear()
        node.timings.chunks.clear()
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


def node_phase(context: rclpy.Context, seconds: float, nice: int) -> dict:
    overrides = {
        'bundle_path': str(PACKAGE / 'adamoe_ros' / 'bundles' / 'so101_demo'),
        'robot_profile': 'so101',
        'refill_threshold': 1.0,
        'inference_thread_nice': nice,
        'control_rate': 1.0 / PERIOD_S,
        'publish_trajectory': True,
    }
    node = PolicyNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    cpu, wall = spin_phase(context, node, seconds, activate=True)
    result = {
        'jitter': list(jitter_ms(node.timings.command_perf_ns)),
        'overhead': [(t.arrival_to_publish_s - t.engine_s) * 1e3 for t in node.timings.chunks],
        'engine': [t.engine_s * 1e3 for t in node.timings.chunks],
        'commands': len(node.timings.command_perf_ns),
        'ticks': int(wall / PERIOD_S),
        'stale': node.status_message().stale_events,
        'cpu': cpu,
        'wall': wall,
    }
    node.trigger_shutdown()
    node.destroy_node()
    return result


def bare_phase(context: rclpy.Context, seconds: float) -> dict:
    timer = BareTimer(context=context)
    cpu, wall = spin_phase(context, timer, seconds, activate=False)
    timer.destroy_node()
    return {'jitter': list(jitter_ms(timer.ticks)), 'cpu': cpu, 'wall': wall}


def merge(results: list[dict]) -> dict:
    merged: dict = {}
    for result in results:
        for key, value in result.items():
            merged[key] = merged.get(key, [] if isinstance(value, list) else 0) + value
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds of the three phases')
    parser.add_argument('--duration', type=float, default=4.0, help='seconds per phase and round')
    parser.add_argument('--camera-rate', type=float, default=30.0)
    parser.add_argument('--size', type=int, nargs=2, default=[128, 128], metavar=('H', 'W'))
    args = parser.parse_args()
    total = args.rounds * (3 * args.duration + 5) + 5
    inputs = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'adamoe_ros.tools.fake_inputs',
            '--duration',
            str(total),
            '--camera-rate',
            str(args.camera_rate),
            '--height',
            str(args.size[0]),
            '--width',
            str(args.size[1]),
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    phases: dict[str, list[dict]] = {
        'bare 50 Hz timer': [],
        'node, inference nice 0': [],
        'node, inference nice 10': [],
    }
    try:
        time.sleep(1.5)
        inputs_cpu0, wall0 = cpu_seconds(inputs.pid), time.monotonic()
        # Interleaved so that load changes on the shared machine hit every phase alike.
        for _ in range(args.rounds):
            phases['bare 50 Hz timer'].append(bare_phase(context, args.duration))
            phases['node, inference nice 0'].append(node_phase(context, args.duration, 0))
            phases['node, inference nice 10'].append(node_phase(context, args.duration, 10))
        inputs_share = (cpu_seconds(inputs.pid) - inputs_cpu0) / (time.monotonic() - wall0)
    finally:
        rclpy.try_shutdown(context=context)
        inputs.kill()
        inputs.wait()

    print(
        f'machine: {os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.2f} at the end; '
        f'{args.rounds} rounds x {args.duration:.0f} s per phase, cameras 2 x {args.size[0]}x{args.size[1]} '
        f'@ {args.camera_rate:.0f} Hz'
    )
    bare = merge(phases.pop('bare 50 Hz timer'))
    print(
        f'{"bare 50 Hz timer":26s} jitter p50 {pct(bare["jitter"], 50):6.2f} ms  '
        f'p99 {pct(bare["jitter"], 99):6.2f} ms'
        f'  CPU {100 * bare["cpu"] / bare["wall"]:4.0f} %'
    )
    for name, results in phases.items():
        r = merge(results)
        print(
            f'{name:26s} jitter p50 {pct(r["jitter"], 50):6.2f} ms  p99 {pct(r["jitter"], 99):6.2f} ms'
            f'  (p99 x{pct(r["jitter"], 99) / pct(bare["jitter"], 99):.2f} of bare)'
            f'  CPU {100 * r["cpu"] / r["wall"]:4.0f} %'
        )
        print(
            f'{"":26s} ROS overhead p50 {pct(r["overhead"], 50):.2f} ms  p99 {pct(r["overhead"], 99):.2f} ms;'
            f' engine p50 {pct(r["engine"], 50):.1f} ms; {len(r["engine"])} chunks;'
            f' commands {r["commands"]}/{r["ticks"]} ticks; stale stops {r["stale"]}'
        )
    print(f'input publisher process CPU {100 * inputs_share:.0f} % of one core')


if __name__ == '__main__':
    main()
