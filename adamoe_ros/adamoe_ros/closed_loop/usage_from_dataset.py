"""Expert activation of a bundle along a recorded LeRobot episode: which expert each action token is routed to.

    python -m adamoe_ros.closed_loop.usage_from_dataset --bundle B --dataset D --episode 0 --out usage.png

The bundle is run on every frame of the episode (images, state and task from the dataset); task phases come from
the recorded state (cube height, gripper opening, distance of the cube to the goal).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from adamoe_ros.closed_loop.report import plot_expert_usage, plot_token_routing
from adamoe_ros.closed_loop.rollout import EpisodeResult, RoutingRecord
from adamoe_ros.engine import Observation, PolicyEngine
from adamoe_ros.sim.task import DEFAULT_GOAL_XY

# State-based phase rule for the SO-101 demo state (joints, then cube_x, cube_y, cube_z).
GRIPPER_CLOSING = 0.4  # rad: below this the jaws are closing on (or holding) the cube
CUBE_REST_Z = 0.02  # m: cube centre resting on the table
LIFTED_Z = CUBE_REST_Z + 0.01
PLACE_RADIUS = 0.05  # m from the goal


def phase_from_state(state: dict[str, float], was_lifted: bool) -> str:
    """Label one frame's task phase from its recorded state."""
    near_goal = np.hypot(state['cube_x'] - DEFAULT_GOAL_XY[0], state['cube_y'] - DEFAULT_GOAL_XY[1]) < PLACE_RADIUS
    if was_lifted and near_goal:
        return 'place'
    if state['cube_z'] > LIFTED_Z:
        return 'lift'
    return 'grasp' if state['gripper'] < GRIPPER_CLOSING else 'reach'


def replay_episode(engine: PolicyEngine, dataset: object, episode: int, every: int = 1) -> EpisodeResult:
    """Run the engine on each (every-th) frame of one dataset episode and keep its routing."""
    spec = engine.spec
    start = int(dataset.meta.episodes['dataset_from_index'][episode])
    end = int(dataset.meta.episodes['dataset_to_index'][episode])
    result = EpisodeResult(seed=episode, success=False, lifted=False, episode_time=0.0)
    lifted = False
    for index in range(start, end, every):
        item = dataset[index]
        images = {
            cam: (item[f'observation.images.{cam}'].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
            for cam in spec.camera_names
        }
        state = item['observation.state'].numpy().astype(np.float32)
        named = dict(zip(spec.state_names, state.tolist(), strict=True))
        lifted |= named['cube_z'] > LIFTED_Z
        out = engine.infer(Observation(images=images, state=state, instruction=item['task']), noise_seed=index)
        result.routing.append(
            RoutingRecord(
                time=float(item['timestamp']),
                phase=phase_from_state(named, lifted),
                token_fraction=out.routing.token_fraction,
                mean_weight=out.routing.mean_weight,
                token_expert=out.routing.token_expert,
                token_weight=out.routing.token_weight,
            )
        )
        result.inference_times.append(out.timings['total'])
    result.lifted = lifted
    result.episode_time = result.routing[-1].time if result.routing else 0.0
    return result


def main(argv: list[str] | None = None) -> None:
    """Write the per-token routing plot and the per-phase usage plot of one dataset episode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bundle', type=Path, required=True)
    parser.add_argument('--dataset', type=Path, required=True, help='LeRobot dataset folder')
    parser.add_argument('--repo-id', default='local/so101_demos')
    parser.add_argument('--episode', type=int, default=0)
    parser.add_argument('--every', type=int, default=1, help='use every n-th frame')
    parser.add_argument('--out', type=Path, required=True, help='PNG of the per-token routing')
    args = parser.parse_args(argv)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: PLC0415 - heavy, only for this tool

    dataset = LeRobotDataset(args.repo_id, root=args.dataset, video_backend='pyav')
    engine = PolicyEngine.from_bundle(args.bundle)
    episode = replay_episode(engine, dataset, args.episode, args.every)
    title = f'{args.bundle.name}: dataset episode {args.episode}'
    plot_token_routing(episode.routing, args.out, title=title)
    phases = args.out.with_name(args.out.stem + '_phases.png')
    plot_expert_usage([episode], phases, title=title)
    print(f'{len(episode.routing)} frames -> {args.out}, {phases}')


if __name__ == '__main__':
    main()
