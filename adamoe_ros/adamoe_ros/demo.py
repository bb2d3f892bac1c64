"""The embedded demo: the bundled SO-101 policy drives the MuJoCo sim over ROS 2 topics, then a report.

    python -m adamoe_ros.demo            (or: ros2 run adamoe_ros adamoe_demo, or: make demo)

The scene is the one whose privileged state the bundle reads (sim/tasks.py), or --scene for a bundle that reads
none (cameras and joints only); consecutive seeds cycle through its tasks, and each episode's instruction is
published on the instruction topic, as a user would. Prints each episode as it finishes, the success rate per
instruction and overall with 95% intervals and the inference latency, and writes results.json, a contact sheet and
a video of the cameras, and a plot of expert usage to --out.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from adamoe_contract.spec import load_spec
from adamoe_ros.bundles import MULTITASK
from adamoe_ros.closed_loop.protocol import EPISODE_TIME_S, TEST_FIRST_SEED
from adamoe_ros.closed_loop.report import (
    contact_sheet,
    episode_table,
    plot_expert_usage,
    print_per_task,
    summarize,
    write_json,
    write_video,
)
from adamoe_ros.closed_loop.ros_eval import RosEvalConfig, add_mode_argument, evaluate_over_ros
from adamoe_ros.sim.tasks import SCENES, scene_def, scene_for_state

DEMO_BUNDLE = MULTITASK


def main(argv: list[str] | None = None) -> None:
    """Run the demo and print where its outputs are."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bundle', type=Path, default=DEMO_BUNDLE, help='policy bundle folder')
    parser.add_argument('--episodes', type=int, default=0, help='default: one per task of the scene, at least 5')
    parser.add_argument(
        '--first-seed',
        type=int,
        default=TEST_FIRST_SEED,
        help='held-out seeds start here, never used to choose the model (closed_loop/protocol.py)',
    )
    parser.add_argument('--max-time', type=float, default=EPISODE_TIME_S, help='sim seconds per episode')
    parser.add_argument('--real-time-factor', type=float, default=1.0)
    add_mode_argument(parser)
    parser.add_argument('--scene', choices=sorted(SCENES), help="default: the scene of the bundle's privileged state")
    parser.add_argument('--out', type=Path, default=Path('outputs/demo'))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    spec = load_spec(args.bundle)
    privileged = spec.state_names[len(spec.joint_names) :]
    if args.scene is None and not privileged:
        parser.error(f'{args.bundle} reads no privileged state, so it does not say its scene: pass --scene')
    try:
        scene = scene_def(args.scene) if args.scene else scene_for_state(privileged)
    except ValueError as err:  # a state no scene publishes: the bundle was trained elsewhere
        parser.error(f'{args.bundle}: {err}')
    if privileged and tuple(privileged) != scene.state_names:
        parser.error(f'{args.bundle} reads the state {list(privileged)}; scene {scene.name} publishes another')
    args.episodes = args.episodes or max(5, len(scene.tasks))
    routing = spec.routing
    moe = f', {routing.num_experts} experts top-{routing.top_k}' if routing.num_experts else ''
    print(
        f'adamoe_ros demo: bundle {args.bundle} ({spec.bundle_id[:12]}, {routing.mode} routing{moe}), '
        f'scene {scene.name} ({len(scene.tasks)} tasks), {args.episodes} episodes of at most '
        f'{args.max_time:.0f} s sim time, real-time factor {args.real_time_factor}',
        flush=True,
    )
    start = time.monotonic()
    cfg = RosEvalConfig(
        bundle=args.bundle,
        episodes=args.episodes,
        first_seed=args.first_seed,
        max_time=args.max_time,
        real_time_factor=args.real_time_factor,
        execution_mode=args.mode,
        scene=scene.name,
    )
    episodes = evaluate_over_ros(cfg, log=lambda line: print('  ' + line, flush=True))
    summary = summarize(episodes, spec.routing.top_k)
    summary['wall_time_s'] = round(time.monotonic() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / 'results.json',
        {
            'bundle': str(args.bundle),
            'bundle_id': spec.bundle_id,
            'summary': summary,
            'episodes': episode_table(episodes),
        },
    )
    sheet = contact_sheet(episodes, args.out / 'contact_sheet.png')
    video = write_video(episodes[0], args.out / 'episode_0.mp4') if episodes else None
    plot = plot_expert_usage(
        episodes, args.out / 'expert_usage.png', title=f'expert usage, bundle {spec.bundle_id[:12]}'
    )
    low, high = summary['success_ci95']
    inf = summary['inference']
    print(
        f'success {summary["successes"]}/{summary["episodes"]} = {summary["success_rate"]:.0%} '
        f'(95% CI {low:.0%}-{high:.0%}); inference p50 {inf["p50_ms"]:.1f} ms, p99 {inf["p99_ms"]:.1f} ms'
    )
    if len(scene.tasks) > 1:
        print_per_task(summary)
    if 'observation_to_chunk' in summary:
        o2c = summary['observation_to_chunk']
        print(f'observation -> chunk published: p50 {o2c["p50_ms"]:.1f} ms, p99 {o2c["p99_ms"]:.1f} ms')
    for label, path in (
        ('results', args.out / 'results.json'),
        ('contact sheet', sheet),
        ('video', video),
        ('expert usage', plot),
    ):
        if path:
            print(f'{label}: {path}')


if __name__ == '__main__':
    main()
