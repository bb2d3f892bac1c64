"""Benchmark of the policy node at camera sizes of a real arm, its phases measured side by side in one run.

Camera frames, joint states and the instruction come from adamoe_ros.tools.fake_inputs in another process, as from
a camera driver. Phases, interleaved over rounds so that load from other processes hits all of them alike:
- a bare 50 Hz rclpy timer: the command jitter this machine allows right now;
- the policy node with its engine in the inference thread (engine_host 'thread');
- the policy node with its engine in a child process (engine_host 'process').
Both nodes run inference back to back (refill_threshold 1.0) at nice 10, on one SingleThreadedExecutor as
policy_node's main() runs it.

Per phase:
- command jitter |period - 20 ms| p50/p99, and the p99 as a multiple of the bare timer's;
- ROS overhead: trigger-frame arrival to chunk publish, minus the engine call (p50/p99);
- engine call p50 (for the process: the copy into shared memory and the round trip included) and its own total;
- control ticks missed: command periods of two ticks or more count one per tick left out;
- frames received by the node vs sent by the publisher, per camera;
- CPU (% of one core) and peak RSS (MB) of the node process, the engine process and the publisher. The node
  process is this one: its RSS carries what earlier phases left behind.

Run (FASTDDS_DEFAULT_PROFILES_FILE set for both processes with --shm-profile, unset without):
  source scripts/env.sh && ROS_DOMAIN_ID=62 python adamoe_ros/benchmarks/bench_policy_node.py \\
      --size 480 640 --shm-profile
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter

from adamoe_contract.spec import load_spec
from adamoe_ros.bundles import PICK_PLACE
from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.policy.node import PolicyNode
from adamoe_ros.tools.proc_stats import read_process_stats

PACKAGE = Path(__file__).resolve().parents[1]
DEMO = PICK_PLACE
SHM_PROFILE = PACKAGE / 'config' / 'fastdds_shm.xml'
PERIOD_S = 0.02
WARM_UP_S = 2.0
BARE = 'bare 50 Hz timer'
HOSTS = {'engine in thread': 'thread', 'engine in process': 'process'}


def cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float('nan')


class BareTimer(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('bare_timer', **kwargs)
        self.ticks: list[int] = []
        self.create_timer(PERIOD_S, lambda: self.ticks.append(time.perf_counter_ns()))


class Watch:
    """CPU seconds and peak RSS of named processes over one phase, sampled while it runs."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.peak_kb = dict.fromkeys(pids, 0)
        self.wall0 = time.monotonic()

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            for name, pid in self.pids.items():
                self.peak_kb[name] = max(self.peak_kb[name], read_process_stats(pid).rss_kb)
            time.sleep(min(0.2, left))

    def result(self) -> dict:
        wall = time.monotonic() - self.wall0
        return {
            name: {'cpu_s': cpu_seconds(pid) - self.cpu0[name], 'wall_s': wall, 'peak_kb': self.peak_kb[name]}
            for name, pid in self.pids.items()
        }


def spinning(context: rclpy.Context, node: Node) -> Callable[[], None]:
    """Spin node on a SingleThreadedExecutor in a thread (as policy_node's main()); return the stop function."""
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    return ExecutorThread(executor).start().stop


def bare_phase(context: rclpy.Context, seconds: float, publisher_pid: int) -> dict:
    timer = BareTimer(context=context)
    stop = spinning(context, timer)
    time.sleep(1.0)
    timer.ticks.clear()
    watch = Watch({'node': os.getpid(), 'publisher': publisher_pid})
    watch.run(seconds)
    usage = watch.result()
    stop()
    timer.destroy_node()
    return {'ticks_ns': list(timer.ticks), 'usage': usage}


def node_phase(
    context: rclpy.Context, args: argparse.Namespace, host: str, publisher_pid: int, sent: np.ndarray
) -> dict:
    overrides = {
        'bundle_path': str(args.bundle),
        'robot_profile': 'so101',
        'refill_threshold': 1.0,
        'inference_thread_nice': 10,
        'engine_host': host,
        'control_rate': 1.0 / PERIOD_S,
        'publish_trajectory': True,
    }
    node = PolicyNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    stop = spinning(context, node)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    time.sleep(WARM_UP_S)  # first chunks, queue filled
    timings = node.timings
    timings.command_perf_ns.clear()
    timings.chunks.clear()
    received0, sent0 = dict(timings.frames_received), sent.copy()
    pids = {'node': os.getpid(), 'publisher': publisher_pid}
    if host == 'process':
        pids['engine'] = node._engine.pid
    watch = Watch(pids)
    watch.run(args.duration)
    received = {c: timings.frames_received[c] - received0.get(c, 0) for c in args.cameras}
    sent_now = sent.copy()
    usage = watch.result()
    commands = list(timings.command_perf_ns)
    chunks = list(timings.chunks)
    status = node.status_message()
    node.trigger_deactivate()
    node.trigger_shutdown()
    stop()
    node.destroy_node()
    return {
        'ticks_ns': commands,
        'overhead_ms': [(t.arrival_to_publish_s - t.engine_s) * 1e3 for t in chunks],
        'engine_call_ms': [t.engine_s * 1e3 for t in chunks],
        'engine_total_ms': [t.engine_total_s * 1e3 for t in chunks],
        'received': received,
        'sent': dict(zip(args.cameras, (sent_now - sent0).tolist())),
        'stale_events': status.stale_events,
        'problem': status.message,
        'usage': usage,
    }


def jitter_ms(ticks_ns: list[int]) -> np.ndarray:
    return np.abs(np.diff(np.asarray(ticks_ns, dtype=np.int64)) * 1e-9 - PERIOD_S) * 1e3


def missed_ticks(ticks_ns: list[int]) -> int:
    periods = np.diff(np.asarray(ticks_ns, dtype=np.int64)) * 1e-9 / PERIOD_S
    return int(np.sum(np.maximum(np.round(periods) - 1, 0)))


def summarize(rounds: list[dict]) -> dict:
    """One phase over all rounds: jitter per round (no period across two rounds), the rest pooled."""
    jitter = np.concatenate([jitter_ms(r['ticks_ns']) for r in rounds])
    out = {
        'jitter_p50_ms': pct(jitter, 50),
        'jitter_p99_ms': pct(jitter, 99),
        'missed_ticks': sum(missed_ticks(r['ticks_ns']) for r in rounds),
        'commands': sum(len(r['ticks_ns']) for r in rounds),
    }
    names = rounds[0]['usage']
    for name in names:
        cpu = sum(r['usage'][name]['cpu_s'] for r in rounds)
        wall = sum(r['usage'][name]['wall_s'] for r in rounds)
        out[f'cpu_{name}_pct'] = 100 * cpu / wall
        out[f'peak_rss_{name}_mb'] = max(r['usage'][name]['peak_kb'] for r in rounds) / 1024
    if 'overhead_ms' in rounds[0]:
        for key in ('overhead_ms', 'engine_call_ms', 'engine_total_ms'):
            values = [v for r in rounds for v in r[key]]
            out[f'{key[:-3]}_p50_ms'] = pct(values, 50)
            out[f'{key[:-3]}_p99_ms'] = pct(values, 99)
        out['chunks'] = sum(len(r['engine_call_ms']) for r in rounds)
        out['received'] = {c: sum(r['received'][c] for r in rounds) for c in rounds[0]['received']}
        out['sent'] = {c: sum(r['sent'][c] for r in rounds) for c in rounds[0]['sent']}
        out['stale_events'] = sum(r['stale_events'] for r in rounds)
        out['problems'] = sorted({r['problem'] for r in rounds if r['problem']})
    return out


def print_table(args: argparse.Namespace, results: dict[str, dict]) -> None:
    bare = results[BARE]
    profile = 'Fast DDS SHM profile' if args.shm_profile else 'default Fast DDS transports'
    print(
        f'\n{len(args.cameras)} cameras {args.size[1]}x{args.size[0]} rgb8 @ {args.camera_rate:.0f} Hz, {profile}; '
        f'bundle {args.bundle.name}; {args.rounds} rounds x {args.duration:.0f} s per phase; {os.cpu_count()} cores, '
        f'1-min load {os.getloadavg()[0]:.2f} at the end'
    )
    print(
        '| phase | jitter p50 / p99 ms | p99 vs bare | ROS overhead p50 / p99 ms | engine call / own p50 ms '
        '| missed ticks | frames received / sent | CPU % node / engine / publisher '
        '| peak RSS MB node / engine / publisher |'
    )
    print('|' + ' --- |' * 9)
    for name, r in results.items():
        ratio = r['jitter_p99_ms'] / bare['jitter_p99_ms']
        cpu = ' / '.join(
            f'{r[f"cpu_{n}_pct"]:.0f}' if f'cpu_{n}_pct' in r else '-' for n in ('node', 'engine', 'publisher')
        )
        rss = ' / '.join(
            f'{r[f"peak_rss_{n}_mb"]:.0f}' if f'peak_rss_{n}_mb' in r else '-' for n in ('node', 'engine', 'publisher')
        )
        if name == BARE:
            ros = engine = frames = '-'
        else:
            ros = f'{r["overhead_p50_ms"]:.2f} / {r["overhead_p99_ms"]:.2f}'
            engine = f'{r["engine_call_p50_ms"]:.1f} / {r["engine_total_p50_ms"]:.1f} ({r["chunks"]} chunks)'
            frames = ', '.join(f'{c} {r["received"][c]}/{r["sent"][c]}' for c in r['received'])
        print(
            f'| {name} | {r["jitter_p50_ms"]:.2f} / {r["jitter_p99_ms"]:.2f} | x{ratio:.2f} | {ros} | {engine} '
            f'| {r["missed_ticks"]} of {r["commands"] + r["missed_ticks"]} | {frames} | {cpu} | {rss} |'
        )
    for name, r in results.items():
        for problem in r.get('problems', []):
            print(f'{name}: node reported {problem!r}')
        if r.get('stale_events'):
            print(f'{name}: {r["stale_events"]} stale stops')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bundle', type=Path, default=DEMO, help='policy bundle (its cameras are published)')
    parser.add_argument('--size', type=int, nargs=2, default=[128, 128], metavar=('H', 'W'), help='camera image')
    parser.add_argument('--camera-rate', type=float, default=30.0)
    parser.add_argument('--shm-profile', action='store_true', help=f'use {SHM_PROFILE.name} in both processes')
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds of the phases')
    parser.add_argument('--duration', type=float, default=6.0, help='measured seconds per phase and round')
    parser.add_argument('--hosts', nargs='+', default=list(HOSTS.values()), choices=list(HOSTS.values()))
    parser.add_argument('--json', type=Path, help='also write the figures here')
    args = parser.parse_args()
    args.cameras = list(load_spec(args.bundle).camera_names)
    if args.shm_profile:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(SHM_PROFILE)
    else:
        os.environ.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
    phases = [BARE] + [name for name, host in HOSTS.items() if host in args.hosts]
    per_phase_s = args.duration + WARM_UP_S + 6.0  # measured + warm-up + configure and shutdown
    total = args.rounds * len(phases) * per_phase_s + 10
    counts = Path(tempfile.mkdtemp(prefix='bench_policy_')) / 'sent'
    publisher = subprocess.Popen(
        [sys.executable, '-m', 'adamoe_ros.tools.fake_inputs', '--duration', str(total)]
        + ['--camera-rate', str(args.camera_rate), '--height', str(args.size[0]), '--width', str(args.size[1])]
        + ['--cameras', *args.cameras, '--sent-counts', str(counts)],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    rounds: dict[str, list[dict]] = {name: [] for name in phases}
    try:
        while not counts.exists() or counts.stat().st_size < 8 * len(args.cameras):
            time.sleep(0.1)
        sent = np.memmap(counts, np.int64, 'r', shape=(len(args.cameras),))
        for _ in range(args.rounds):
            for name in phases:
                if name == BARE:
                    rounds[name].append(bare_phase(context, args.duration, publisher.pid))
                else:
                    rounds[name].append(node_phase(context, args, HOSTS[name], publisher.pid, sent))
    finally:
        rclpy.try_shutdown(context=context)
        publisher.kill()
        publisher.wait()
    results = {name: summarize(r) for name, r in rounds.items()}
    print_table(args, results)
    if args.json:
        setup = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != 'json'}
        args.json.write_text(json.dumps({'setup': setup, 'results': results}, indent=1))


if __name__ == '__main__':
    main()
