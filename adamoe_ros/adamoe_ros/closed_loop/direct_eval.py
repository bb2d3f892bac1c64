"""Evaluate a bundle with the engine driving the sim directly (no ROS): exact, fast, for the ablation.

Imports no rclpy (test_visualization checks it), so it runs where ROS is not installed.

python -m adamoe_ros.closed_loop.direct_eval --bundle outputs/pipeline/bundle --episodes 50 --out r.json

Multi-task scene: `--scene multitask --phrasing held_out` evaluates held-out paraphrases; `--swap` tells each
episode the next task's instruction and reports both that task's success and the scene task's (per task);
`--task red_on_green` takes only that task's seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from adamoe_ros.closed_loop.instructions import PHRASINGS, episode_instruction, task_seeds
from adamoe_ros.closed_loop.protocol import EPISODE_TIME_S, SELECTION_FIRST_SEED
from adamoe_ros.closed_loop.report import (
    contact_sheet,
    episode_table,
    plot_expert_usage,
    plot_token_routing,
    print_per_task,
    summarize,
    write_json,
)
from adamoe_ros.closed_loop.rollout import run_policy_episode
from adamoe_ros.engine import PolicyEngine
from adamoe_ros.policy.chunk_queue import DEFAULT_REFILL_THRESHOLD
from adamoe_ros.sim import So101PickPlaceSim
from adamoe_ros.sim.tasks import SCENES, scene_def

SHEET_EPISODES = 4  # rows of --sheet
SHEET_FRAME_EVERY = 20  # control ticks between its frames (2 s at 10 Hz)


def main(argv: list[str] | None = None) -> None:
    """Run the episodes, print progress and a summary, write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bundle', type=Path, required=True)
    parser.add_argument('--episodes', type=int, default=50)
    parser.add_argument('--first-seed', type=int, default=SELECTION_FIRST_SEED, help='held-out seeds (protocol.py)')
    parser.add_argument('--max-time', type=float, default=EPISODE_TIME_S, help='sim seconds per episode')
    parser.add_argument('--noise-seed', type=int, default=0, help='flow noise seed (per chunk and episode)')
    parser.add_argument(
        '--refill-threshold',
        type=float,
        default=DEFAULT_REFILL_THRESHOLD,
        help='new chunk when fewer than this fraction of it is left (0 < x <= 1)',
    )
    parser.add_argument('--scene', default='pick_place', choices=sorted(SCENES), help='sim/tasks.py scene')
    parser.add_argument('--phrasing', default='canonical', choices=PHRASINGS, help='instruction words per task')
    parser.add_argument('--swap', action='store_true', help="instruct the next task's instruction (language test)")
    parser.add_argument('--task', help="only this task's seeds (a sim/tasks.py task name, e.g. red_on_green)")
    parser.add_argument('--out', type=Path, required=True, help='results JSON')
    parser.add_argument('--plot', type=Path, default=None, help='expert usage plot (PNG)')
    parser.add_argument('--sheet', type=Path, default=None, help='contact sheet of the first episodes (PNG)')
    args = parser.parse_args(argv)
    if not 0.0 < args.refill_threshold <= 1.0:
        parser.error(f'--refill-threshold {args.refill_threshold} is outside (0, 1]: the fraction of a chunk left')

    scene = scene_def(args.scene)
    seeds = task_seeds(scene, args.task, args.first_seed, args.episodes)
    engine = PolicyEngine.from_bundle(args.bundle, intra_op_threads=1)
    sim = So101PickPlaceSim(scene=scene)
    start = time.monotonic()
    episodes = []
    try:
        for i, seed in enumerate(seeds):
            told = episode_instruction(scene, seed, args.phrasing, args.swap)
            frame_every = SHEET_FRAME_EVERY if args.sheet and i < SHEET_EPISODES else 0
            # fmt: off
            result = run_policy_episode(engine, sim, seed, told, max_time=args.max_time, noise_seed=args.noise_seed,
                                        refill_threshold=args.refill_threshold,
                                        frame_every=frame_every)
            # fmt: on
            episodes.append(result)
            wins = sum(e.success for e in episodes)
            print(
                f'episode {i + 1}/{args.episodes} seed {result.seed} {result.task!r}: '
                f'{"success" if result.success else "fail"} ({wins}/{i + 1}), {time.monotonic() - start:.0f} s',
                flush=True,
            )
    finally:
        sim.close()
    summary = summarize(episodes, engine.spec.routing.top_k)
    summary['wall_time_s'] = round(time.monotonic() - start, 1)
    write_json(
        args.out,
        {
            'bundle': str(args.bundle),
            'bundle_id': engine.spec.bundle_id,
            'scene': args.scene,
            'phrasing': args.phrasing,
            'swapped_instructions': args.swap,
            'refill_threshold': args.refill_threshold,
            'noise_seed': args.noise_seed,
            'summary': summary,
            'episodes': episode_table(episodes),
        },
    )
    if args.plot:
        plot_expert_usage(episodes, args.plot, title=f'expert usage, {args.bundle} ({engine.spec.bundle_id[:12]})')
        first = episodes[0]
        plot_token_routing(
            first.routing,
            args.plot.with_name(args.plot.stem + '_tokens.png'),
            title=f'{args.bundle.name}: routing per action token, seed {first.seed}',
        )
    if args.sheet:
        contact_sheet(episodes, args.sheet, max_episodes=SHEET_EPISODES)
    print_per_task(summary)
    low, high = summary['success_ci95']
    print(
        f'success {summary["successes"]}/{summary["episodes"]} (95% CI {low:.0%}-{high:.0%}), '
        f'inference p50 {summary["inference"]["p50_ms"]:.1f} ms -> {args.out}'
    )


if __name__ == '__main__':
    main()
