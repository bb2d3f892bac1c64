#!/usr/bin/env python3
"""A bundle over ROS on N held-out seeds per instruction of a scene, one task at a time, then the pooled table.

Each task's evaluation (`ros_eval --task`) writes its own JSON and is skipped when that file exists, so a stopped
run continues with the next task. Real-time factor 1 by default: run it alone (it measures the deployed loop).

    flock /tmp/adamoe-cpu.lock python scripts/ros_eval_per_task.py --out results/ros_eval_multitask
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adamoe_ros.bundles import MULTITASK
from adamoe_ros.closed_loop import ros_eval
from adamoe_ros.closed_loop.protocol import EPISODE_TIME_S, TEST_FIRST_SEED
from adamoe_ros.closed_loop.stats import wilson_interval
from adamoe_ros.sim.tasks import SCENES, scene_def


def pooled_table(results: dict[str, dict]) -> str:
    """Return a markdown table of success per task and pooled, with 95% Wilson intervals, and the latencies."""
    lines = [
        '| task | success (95% Wilson) | inference p50 / p99 | observation to chunk p50 / p99 |',
        '| --- | --- | --- | --- |',
    ]
    wins = total = 0
    for task, result in results.items():
        summary = result['summary']
        won, n = summary['successes'], summary['episodes']
        low, high = wilson_interval(won, n)
        inf, o2c = summary['inference'], summary.get('observation_to_chunk', {})
        lines.append(
            f'| {task} | {won}/{n} ({low:.0%}-{high:.0%}) | {inf["p50_ms"]:.1f} / {inf["p99_ms"]:.1f} ms '
            f'| {o2c.get("p50_ms", float("nan")):.0f} / {o2c.get("p99_ms", float("nan")):.0f} ms |'
        )
        wins, total = wins + won, total + n
    low, high = wilson_interval(wins, total)
    lines.append(f'| **all** | **{wins}/{total} ({low:.0%}-{high:.0%})** | | |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bundle', type=Path, default=MULTITASK)
    parser.add_argument('--scene', default='multitask', choices=sorted(SCENES))
    parser.add_argument('--episodes', type=int, default=50, help='held-out seeds per task')
    parser.add_argument(
        '--first-seed', type=int, default=TEST_FIRST_SEED, help='each task takes its seeds from here on'
    )
    parser.add_argument('--max-time', type=float, default=EPISODE_TIME_S, help='sim seconds per episode')
    parser.add_argument('--real-time-factor', type=float, default=1.0)
    ros_eval.add_mode_argument(parser)
    parser.add_argument('--out', type=Path, required=True, help='folder for <task>.json and table.md')
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for task in scene_def(args.scene).tasks:
        out = args.out / f'{task.name}.json'
        if not out.exists():
            # fmt: off
            ros_eval.main(['--bundle', str(args.bundle), '--scene', args.scene, '--task', task.name,
                           '--episodes', str(args.episodes), '--first-seed', str(args.first_seed),
                           '--max-time', str(args.max_time), '--real-time-factor', str(args.real_time_factor),
                           '--mode', args.mode, '--out', str(out)])
            # fmt: on
        results[task.name] = json.loads(out.read_text())
    table = pooled_table(results)
    (args.out / 'table.md').write_text(table + '\n')
    print(table)


if __name__ == '__main__':
    main()
