"""Stage 1 of the pipeline: scripted demonstrations recorded through ROS into a LeRobot dataset.

sim_bridge_node + scripted_expert + recorder_node in one process: per episode the harness resets the sim with a
seed (which also picks the episode's task), waits until the expert has announced that task as an instruction (a
train phrase of sim/tasks.py, never a held-out one), starts the recorder (the instruction becomes the episode's
LeRobot task), lets the expert solve the task over the ROS topics (as a teleoperator would), then saves the
episode if the physics says the task was solved, else discards it.

    python -m adamoe_ros.closed_loop.collect --episodes 40 --root data/so101_demos
    python -m adamoe_ros.closed_loop.collect --scene multitask --episodes 120 --root data/so101_multitask
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rclpy.node import Node
from std_srvs.srv import Trigger

from adamoe_ros.closed_loop.protocol import TRAIN_FIRST_SEED
from adamoe_ros.recorder.save_answer import saved_frame_counts
from adamoe_ros.ros_env import NS_PER_S, call_service
from adamoe_ros.runner import InProcessLaunch, NodeSpec
from adamoe_ros.sim.bridge_node import SimBridgeNode
from adamoe_ros.sim.expert_plan import SETTLE_AFTER_RELEASE_S
from adamoe_ros.sim.scripted_expert import ScriptedExpertNode
from adamoe_ros.sim.tasks import SCENES, TaskDef, scene_def
from adamoe_ros_interfaces.srv import GetTaskStatus, ResetSim

# Sim time an episode goes on recording once the expert is done: the released cube comes to rest before the physics
# judges it, and the demonstration ends holding still.
RECORD_AFTER_DONE_S = 2 * SETTLE_AFTER_RELEASE_S


def collect(
    root: Path,
    episodes: int,
    first_seed: int = TRAIN_FIRST_SEED,
    real_time_factor: float = 3.0,
    repo_id: str = 'local/so101_demos',
    image_size: int = 128,
    fps: int = 10,
    max_attempts_factor: float = 1.5,
    scene: str = 'pick_place',
    privileged_state: bool = True,
    recovery: bool = False,
) -> dict[str, int]:
    """Record `episodes` successful demonstrations (seeds first_seed, first_seed + 1, ...); return counts.

    The counts: episodes saved and discarded, and the saved episodes' frames and dropped frames. Without
    `privileged_state` the dataset's state is the joints alone (a policy from cameras + joints). With `recovery`
    the expert regrasps what it missed and some first grasps are disturbed (the scripted_expert parameter).
    """
    tasks = scene_def(scene)
    sim_params = {
        'scene': scene,
        'real_time_factor': real_time_factor,
        'image_height': image_size,
        'image_width': image_size,
        'camera_rate': float(fps),
        'seed': first_seed,
    }
    specs = [
        NodeSpec('sim_bridge_node', parameters=sim_params),
        NodeSpec(
            'scripted_expert',
            parameters={
                'use_sim_time': True,
                'control_rate': float(fps),
                'scene': scene,
                'phrase_seed': first_seed,
                'recovery': recovery,
            },
        ),
        NodeSpec(
            'recorder_node',
            parameters={
                'use_sim_time': True,
                'dataset_root': str(root),
                'repo_id': repo_id,
                'fps': fps,
                # The privileged state: every object of the scene (only the instruction tells which ones matter).
                'extra_state_topic': tasks.state_topic if privileged_state else '',
                'extra_state_names': list(tasks.state_names),  # unused without the topic
            },
        ),
    ]
    counts = {'saved': 0, 'discarded': 0, 'frames': 0, 'dropped_frames': 0}
    launch = InProcessLaunch(specs)
    try:
        launch.start()
        bridge, expert = launch.nodes['sim_bridge'], launch.nodes['scripted_expert']
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
            task = tasks.task_for_seed(seed)
            _wait_ready(expert, task)
            # The recorder keeps buffered samples for its first frame, within its tolerance (< one frame period):
            # a frame period of sim time puts the last episode's held leader messages out of its reach.
            _wait_sim_time(bridge, 1.0 / fps)
            _start_recorder(clients['recorder/start'], expert.instruction, clients['recorder/discard'])
            started, why = expert.start_episode()
            if not started:
                raise RuntimeError(f'scripted expert did not start: {why}')
            if not expert.episode_done.wait(timeout=120):
                raise TimeoutError(f'scripted expert episode on seed {seed} did not end in 120 s')
            _wait_sim_time(bridge, RECORD_AFTER_DONE_S)
            status = call_service(clients['sim/task_status'], GetTaskStatus.Request())
            if status.success:
                saved = call_service(clients['recorder/save'], Trigger.Request(), timeout=120)
                _check(saved, 'recorder/save')
                frames, dropped = saved_frame_counts(saved.message)
                counts['saved'] += 1
                counts['frames'] += frames
                counts['dropped_frames'] += dropped
            else:
                _check(call_service(clients['recorder/discard'], Trigger.Request()), 'recorder/discard')
                counts['discarded'] += 1
            print(
                f'seed {seed} {task.name} ({expert.instruction!r}): '
                f'{"saved" if status.success else "discarded (" + status.message + ")"}; '
                f'{counts["saved"]}/{episodes} saved, {time.monotonic() - start:.0f} s',
                flush=True,
            )
            seed += 1
        harness.destroy_node()
    finally:
        launch.shutdown()
    return counts


def _wait_sim_time(bridge: SimBridgeNode, seconds: float, timeout: float = 60.0) -> None:
    """Wait until the sim clock has advanced `seconds` (a loaded machine runs it slower than its real-time factor)."""
    until = bridge.now_ns() + int(seconds * NS_PER_S)
    deadline = time.monotonic() + timeout
    while bridge.now_ns() < until:
        if time.monotonic() > deadline:
            raise TimeoutError(f'the sim clock did not advance {seconds} s in {timeout} s')
        time.sleep(0.02)


def _wait_ready(expert: ScriptedExpertNode, task: TaskDef, timeout: float = 10.0) -> None:
    """Wait until the expert has heard every input it needs after a reset, and this episode's task.

    The reset's task message also ends the last episode's hold; until it is heard (the same task may come twice) the
    leader could still stream the last episode's target into this one.
    """
    deadline = time.monotonic() + timeout
    while expert.missing_inputs() or expert.task != task or expert.holding:
        if time.monotonic() > deadline:
            missing = ', '.join(expert.missing_inputs()) or f'sim/task {task.name} (has {expert.task})'
            raise TimeoutError(f'scripted expert got no {missing}')
        time.sleep(0.05)


def _start_recorder(client: object, instruction: str, discard: object, timeout: float = 10.0) -> None:
    """Start an episode with `instruction` as its task.

    Retries while the recorder is not ready yet (e.g. no /clock heard so far) or has not yet heard this
    episode's instruction (it arrives on its own topic): an episode started with the previous one is discarded.
    """
    deadline = time.monotonic() + timeout
    while True:
        response = call_service(client, Trigger.Request())
        if response.success and response.message.endswith(f'{instruction!r}'):
            return
        if response.success:
            _check(call_service(discard, Trigger.Request()), 'recorder/discard')
        if time.monotonic() > deadline:
            raise RuntimeError(f'recorder/start did not record {instruction!r}: {response.message}')
        time.sleep(0.2)


def _check(response: Trigger.Response, name: str) -> None:
    if not response.success:
        raise RuntimeError(f'{name} failed: {response.message}')


def main(argv: list[str] | None = None) -> None:
    """CLI of stage 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', type=Path, required=True, help='dataset folder (created or appended to)')
    parser.add_argument('--episodes', type=int, default=40)
    parser.add_argument('--first-seed', type=int, default=TRAIN_FIRST_SEED, help='training seeds (protocol.py)')
    parser.add_argument('--real-time-factor', type=float, default=3.0)
    parser.add_argument('--repo-id', default='local/so101_demos')
    parser.add_argument('--scene', default='pick_place', choices=sorted(SCENES), help='sim/tasks.py scene')
    parser.add_argument(
        '--no-privileged-state', action='store_true', help="record the joints as the state, not the objects' positions"
    )
    parser.add_argument('--recovery', action='store_true', help='demonstrations with regrasps and disturbed grasps')
    args = parser.parse_args(argv)
    counts = collect(
        args.root,
        args.episodes,
        args.first_seed,
        args.real_time_factor,
        args.repo_id,
        scene=args.scene,
        privileged_state=not args.no_privileged_state,
        recovery=args.recovery,
    )
    print(
        f'dataset {args.root}: {counts["saved"]} episodes saved, {counts["discarded"]} discarded; '
        f'{counts["frames"]} frames, {counts["dropped_frames"]} dropped'
    )


if __name__ == '__main__':
    main()
