"""Stage 1 of the pipeline: scripted demonstrations recorded through ROS into a LeRobot dataset.

sim_bridge_node + scripted_expert + recorder_node in one process: per episode the harness resets the sim with a
seed, starts the recorder, lets the expert solve the task over the ROS topics (as a teleoperator would), then
saves the episode if the physics says the task was solved, else discards it.

    python -m adamoe_ros.closed_loop.collect --episodes 40 --root data/so101_demos
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rclpy.node import Node
from std_srvs.srv import Trigger

from adamoe_ros.closed_loop.ros_eval import call_service
from adamoe_ros.runner import InProcessLaunch, NodeSpec
from adamoe_ros.sim.scripted_expert import ScriptedExpertNode
from adamoe_ros_interfaces.srv import GetTaskStatus, ResetSim


def collect(
    root: Path,
    episodes: int,
    first_seed: int = 0,
    real_time_factor: float = 3.0,
    repo_id: str = 'local/so101_demos',
    image_size: int = 128,
    fps: int = 10,
    max_attempts_factor: float = 1.5,
) -> dict[str, int]:
    """Record `episodes` successful demonstrations (seeds first_seed, first_seed + 1, ...); return counts."""
    sim_params = {
        'real_time_factor': real_time_factor,
        'image_height': image_size,
        'image_width': image_size,
        'camera_rate': float(fps),
        'seed': first_seed,
    }
    specs = [
        NodeSpec('sim_bridge_node', parameters=sim_params),
        NodeSpec('scripted_expert', parameters={'use_sim_time': True, 'control_rate': float(fps)}),
        NodeSpec(
            'recorder_node',
            parameters={'use_sim_time': True, 'dataset_root': str(root), 'repo_id': repo_id, 'fps': fps},
        ),
    ]
    counts = {'saved': 0, 'discarded': 0}
    launch = InProcessLaunch(specs)
    try:
        launch.start()
        expert = launch.nodes['scripted_expert']
        harness = Node('collector', context=launch.context)
        launch.executor.add_node(harness)
        clients = {
            name: harness.create_client(srv, name)
            for name, srv in (
                ('sim/reset', ResetSim),
                ('sim/task_status', GetTaskStatus),
                ('recorder/start', Trigger),
                ('recorder/save', Trigger),
                ('recorder/discard', Trigger),
            )
        }
        seed = first_seed
        start = time.monotonic()
        while counts['saved'] < episodes and seed - first_seed < max_attempts_factor * episodes:
            call_service(clients['sim/reset'], ResetSim.Request(seed=seed))
            _wait_ready(expert)
            _start_recorder(clients['recorder/start'])
            started, why = expert.start_episode()
            if not started:
                raise RuntimeError(f'scripted expert did not start: {why}')
            if not expert.episode_done.wait(timeout=120):
                raise TimeoutError(f'scripted expert episode on seed {seed} did not end in 120 s')
            time.sleep(1.0 / real_time_factor)  # the released cube settles before the physics judges it
            status = call_service(clients['sim/task_status'], GetTaskStatus.Request())
            if status.success:
                _check(call_service(clients['recorder/save'], Trigger.Request(), timeout=120), 'recorder/save')
                counts['saved'] += 1
            else:
                _check(call_service(clients['recorder/discard'], Trigger.Request()), 'recorder/discard')
                counts['discarded'] += 1
            print(
                f'seed {seed}: {"saved" if status.success else "discarded (" + status.message + ")"}; '
                f'{counts["saved"]}/{episodes} saved, {time.monotonic() - start:.0f} s',
                flush=True,
            )
            seed += 1
        harness.destroy_node()
    finally:
        launch.shutdown()
    return counts


def _wait_ready(expert: ScriptedExpertNode, timeout: float = 10.0) -> None:
    """Wait until the expert has heard every input it needs after a reset."""
    deadline = time.monotonic() + timeout
    while expert.missing_inputs():
        if time.monotonic() > deadline:
            raise TimeoutError(f'scripted expert got no {", ".join(expert.missing_inputs())}')
        time.sleep(0.05)


def _start_recorder(client: object, timeout: float = 10.0) -> None:
    """Start an episode, retrying while the recorder is not ready yet (e.g. no /clock heard so far)."""
    deadline = time.monotonic() + timeout
    while True:
        response = call_service(client, Trigger.Request())
        if response.success or time.monotonic() > deadline:
            _check(response, 'recorder/start')
            return
        time.sleep(0.2)


def _check(response: Trigger.Response, name: str) -> None:
    if not response.success:
        raise RuntimeError(f'{name} failed: {response.message}')


def main(argv: list[str] | None = None) -> None:
    """CLI of stage 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', type=Path, required=True, help='dataset folder (created or appended to)')
    parser.add_argument('--episodes', type=int, default=40)
    parser.add_argument('--first-seed', type=int, default=0, help='training seeds; evaluation uses 1000+')
    parser.add_argument('--real-time-factor', type=float, default=3.0)
    parser.add_argument('--repo-id', default='local/so101_demos')
    args = parser.parse_args(argv)
    counts = collect(args.root, args.episodes, args.first_seed, args.real_time_factor, args.repo_id)
    print(f'dataset {args.root}: {counts["saved"]} episodes saved, {counts["discarded"]} discarded')


if __name__ == '__main__':
    main()
