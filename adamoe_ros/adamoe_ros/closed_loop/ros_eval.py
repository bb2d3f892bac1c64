"""Sim-in-the-loop evaluation over real ROS topics: the policy node with a bundle drives the sim bridge.

One process, one executor (the runner): sim_bridge_node + policy_node + an evaluator node that resets the sim
through its service, activates the policy per episode, polls the physics-based task status and collects the
policy's ActionChunk / ExpertUsage messages and camera frames. Before each episode it publishes the episode's
instruction (instructions.episode_instruction: canonical, train or held-out words, or another task's when swapped).

    python -m adamoe_ros.closed_loop.ros_eval --bundle B --scene multitask --phrasing held_out --out r.json
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, String

from adamoe_contract.spec import load_spec
from adamoe_ros.closed_loop.instructions import PHRASINGS, EpisodeInstruction, episode_instruction, task_seeds
from adamoe_ros.closed_loop.phases import gripper_cube_distance, task_phase
from adamoe_ros.closed_loop.protocol import EPISODE_TIME_S, TEST_FIRST_SEED
from adamoe_ros.closed_loop.report import episode_table, print_per_task, summarize, write_json
from adamoe_ros.closed_loop.rollout import EpisodeResult, RoutingRecord
from adamoe_ros.policy.chunk_queue import EXECUTION_MODES
from adamoe_ros.policy.params import PolicyParams
from adamoe_ros.ros_env import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, call_service
from adamoe_ros.ros_image import image_to_numpy
from adamoe_ros.runner import InProcessLaunch, NodeSpec
from adamoe_ros.sim.scene import SO101
from adamoe_ros.sim.task import TaskThresholds
from adamoe_ros.sim.tasks import SCENES, scene_def
from adamoe_ros_interfaces.msg import ActionChunk, ExpertUsage
from adamoe_ros_interfaces.srv import GetTaskStatus, ResetSim


@dataclass
class RosEvalConfig:
    """What to evaluate and how."""

    bundle: Path
    episodes: int = 5
    first_seed: int = TEST_FIRST_SEED
    max_time: float = EPISODE_TIME_S  # sim seconds per episode
    real_time_factor: float = 1.0  # 1.0: the policy sees its real latency in sim time
    execution_mode: str = PolicyParams.execution_mode  # the node's default
    scene: str = 'pick_place'  # sim/tasks.py scene; the seed picks each episode's task
    task: str | None = None  # only this task's seeds (from first_seed on); None: consecutive seeds, every task
    phrasing: str = 'canonical'  # instruction words: canonical, train or held_out (instructions.PHRASINGS)
    swap: bool = False  # instruct the next task's instruction; both tasks are judged
    frame_every: float = 1.0  # sim seconds between frames kept for the contact sheet (0: none)
    policy_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class RosEpisode(EpisodeResult):
    """An episode seen through ROS: adds the chunk latency and the number of commands that reached the sim."""

    latencies: list[float] = field(default_factory=list)
    commands: int = 0
    chunks: int = 0


class _Evaluator(Node):
    """Services and subscriptions the harness needs, in the same executor as the nodes under test."""

    def __init__(self, camera_topics: dict[str, str], **kwargs: Any) -> None:
        super().__init__('evaluator', **kwargs)
        self.reset_client = self.create_client(ResetSim, 'sim/reset')
        self.status_client = self.create_client(GetTaskStatus, 'sim/task_status')
        self.instruction_pub = self.create_publisher(String, 'instruction', LATCHED_QOS)
        self.lock = threading.Lock()
        self.episode: RosEpisode | None = None
        self.phase_of: Callable[[], str] = lambda: 'reach'
        self.sim_time: Callable[[], float] = lambda: 0.0
        self.frame_period = 0.0
        self._next_frame = 0.0
        self._latest: dict[str, np.ndarray] = {}
        self._num_cameras = len(camera_topics)
        self.create_subscription(ActionChunk, 'policy/action_chunk', self._on_chunk, RELIABLE_QOS)
        self.create_subscription(ExpertUsage, 'policy/expert_usage', self._on_usage, RELIABLE_QOS)
        self.create_subscription(
            Float64MultiArray, 'forward_position_controller/commands', self._on_command, RELIABLE_QOS
        )
        for cam, topic in camera_topics.items():
            self.create_subscription(Image, topic, lambda msg, c=cam: self._on_image(c, msg), SENSOR_QOS)

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self.lock:
            if self.episode is not None:
                self.episode.chunks += 1
                self.episode.inference_times.append(msg.inference_time)
                self.episode.latencies.append(msg.latency)

    def _on_usage(self, msg: ExpertUsage) -> None:
        if msg.num_layers == 0:
            return
        shape = (msg.num_layers, msg.num_experts)
        record = RoutingRecord(
            time=self.sim_time(),
            phase=self.phase_of(),
            token_fraction=np.asarray(msg.token_fraction, np.float32).reshape(shape),
            mean_weight=np.asarray(msg.mean_weight, np.float32).reshape(shape),
        )
        with self.lock:
            if self.episode is not None:
                self.episode.routing.append(record)

    def _on_command(self, msg: Float64MultiArray) -> None:
        with self.lock:
            if self.episode is not None:
                self.episode.commands += 1

    def _on_image(self, camera: str, msg: Image) -> None:
        self._latest[camera] = image_to_numpy(msg).copy()
        now = self.sim_time()
        with self.lock:
            if self.episode is None or not self.frame_period or now < self._next_frame:
                return
            if len(self._latest) == self._num_cameras:  # every camera seen at least once
                self.episode.frames.append(dict(self._latest))
                self._next_frame = now + self.frame_period

    def start_episode(self, episode: RosEpisode, frame_period: float) -> None:
        with self.lock:
            self.episode, self.frame_period, self._next_frame = episode, frame_period, 0.0

    def end_episode(self) -> None:
        with self.lock:
            self.episode = None


def evaluate_over_ros(cfg: RosEvalConfig, log: Callable[[str], None] = print) -> list[RosEpisode]:
    """Run cfg.episodes episodes on seeds first_seed.. (of cfg.task, if given) and return what each one did."""
    spec = load_spec(Path(cfg.bundle))
    scene = scene_def(cfg.scene)
    seeds = task_seeds(scene, cfg.task, cfg.first_seed, cfg.episodes)
    height, width = spec.image_size[spec.camera_names[0]]
    # The policy clamps to the SO-101 profile's limits, which test_robot_profile checks against the sim's MJCF.
    policy_params = {
        'bundle_path': str(cfg.bundle),
        'robot_profile': SO101.name,
        'use_sim_time': True,
        'execution_mode': cfg.execution_mode,
        'publish_trajectory': False,
        'command_stream': 'float64_array',
        'control_rate': 1.0 / spec.dt,
        'intra_op_threads': 1,
        'extra_state_topic': scene.state_topic,  # where this scene's bridge publishes the cube positions
        **cfg.policy_overrides,
    }
    specs = [
        NodeSpec(
            'sim_bridge_node',
            parameters={
                'real_time_factor': cfg.real_time_factor,
                'image_height': height,
                'image_width': width,
                'camera_rate': 1.0 / spec.dt,
                'scene': cfg.scene,
            },
        ),
        NodeSpec('policy_node', parameters=policy_params, autostart=False),
    ]
    launch = InProcessLaunch(specs)
    results: list[RosEpisode] = []
    try:
        launch.start()
        bridge, policy = launch.nodes['sim_bridge'], launch.nodes['policy_node']
        evaluator = _Evaluator({cam: SO101.camera_topic(cam) for cam in spec.camera_names}, context=launch.context)
        launch.executor.add_node(evaluator)
        evaluator.sim_time = lambda: bridge.sim.time
        if policy.trigger_configure().name != 'SUCCESS':
            raise RuntimeError(f'policy_node failed to configure with bundle {cfg.bundle} (see its log)')
        for i, seed in enumerate(seeds):
            told = episode_instruction(scene, seed, cfg.phrasing, cfg.swap)
            evaluator.phase_of = lambda told=told: _phase(bridge, told)
            episode = _run_episode(cfg, evaluator, policy, bridge, seed, told)
            results.append(episode)
            log(
                f'episode {i + 1}/{cfg.episodes} seed {seed} {told.task.name}: '
                f'{"SUCCESS" if episode.success else "fail   "} in {episode.episode_time:5.1f} s sim, '
                f'{episode.chunks} chunks, {episode.commands} commands, '
                f'inference p50 {1e3 * float(np.median(episode.inference_times or [np.nan])):.0f} ms'
            )
        evaluator.destroy_node()
    finally:
        launch.shutdown()
    return results


def _phase(bridge: Any, told: EpisodeInstruction) -> str:
    status = bridge.task_status(told.task)
    return task_phase(status, gripper_cube_distance(bridge.sim, told.task.cube), status.distance_to_goal)


def _run_episode(
    cfg: RosEvalConfig, evaluator: _Evaluator, policy: Any, bridge: Any, seed: int, told: EpisodeInstruction
) -> RosEpisode:
    # The instruction goes out before the reset: the policy hears it (latched) before it is activated.
    evaluator.instruction_pub.publish(String(data=told.instruction))
    reset = call_service(evaluator.reset_client, ResetSim.Request(seed=seed))
    if not reset.success:
        raise RuntimeError(f'sim/reset failed: {reset.message}')
    if bridge.sim.task != told.scene_task:
        raise RuntimeError(f'the sim drew task {bridge.sim.task.name} for seed {seed}, expected {told.scene_task.name}')
    episode = RosEpisode(seed=seed, success=False, lifted=False, episode_time=cfg.max_time)
    episode.set_instruction(told)
    evaluator.start_episode(episode, cfg.frame_every)
    if policy.trigger_activate().name != 'SUCCESS':
        raise RuntimeError('policy_node failed to activate')
    try:
        while True:
            time.sleep(0.2)
            # The scene's task is judged over ROS; an instructed other task, in process on the same physics.
            scene_status: GetTaskStatus.Response = call_service(evaluator.status_client, GetTaskStatus.Request())
            status = bridge.task_status(told.task) if told.swapped else scene_status
            episode.lifted |= status.cube_lift > TaskThresholds().lift_height
            episode.scene_task_success = scene_status.success
            if status.success or scene_status.success:
                episode.success, episode.episode_time = status.success, scene_status.episode_time
                break
            if scene_status.episode_time >= cfg.max_time:
                break
    finally:
        policy.trigger_deactivate()
        evaluator.end_episode()
    return episode


def add_mode_argument(parser: argparse.ArgumentParser) -> None:
    """Add --mode: the policy node's chunk execution for the episodes (its default unless given)."""
    parser.add_argument(
        '--mode', default=RosEvalConfig.execution_mode, choices=EXECUTION_MODES, help="chunk execution (the node's)"
    )


def main(argv: list[str] | None = None) -> None:
    """Evaluate a bundle over ROS; print and write the success per instruction (the demo is the quick front end)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bundle', type=Path, required=True)
    parser.add_argument('--episodes', type=int, default=RosEvalConfig.episodes)
    parser.add_argument('--first-seed', type=int, default=RosEvalConfig.first_seed, help='held-out seeds')
    parser.add_argument('--max-time', type=float, default=RosEvalConfig.max_time, help='sim seconds per episode')
    parser.add_argument('--real-time-factor', type=float, default=RosEvalConfig.real_time_factor)
    parser.add_argument('--scene', default=RosEvalConfig.scene, choices=sorted(SCENES), help='sim/tasks.py scene')
    parser.add_argument('--phrasing', default=RosEvalConfig.phrasing, choices=PHRASINGS)
    parser.add_argument('--swap', action='store_true', help="instruct the next task's instruction (language test)")
    parser.add_argument('--task', help="only this task's seeds (a sim/tasks.py task name, e.g. red_on_green)")
    add_mode_argument(parser)
    parser.add_argument('--out', type=Path, required=True, help='results JSON')
    args = parser.parse_args(argv)
    cfg = RosEvalConfig(
        bundle=args.bundle,
        episodes=args.episodes,
        first_seed=args.first_seed,
        max_time=args.max_time,
        real_time_factor=args.real_time_factor,
        scene=args.scene,
        task=args.task,
        phrasing=args.phrasing,
        swap=args.swap,
        execution_mode=args.mode,
        frame_every=0.0,
    )
    episodes = evaluate_over_ros(cfg)
    spec = load_spec(args.bundle)
    summary = summarize(episodes, spec.routing.top_k)
    settings = {
        'scene': args.scene,
        'task': args.task,
        'phrasing': args.phrasing,
        'swapped_instructions': args.swap,
        'execution_mode': args.mode,
    }
    results = {'bundle': str(args.bundle), 'bundle_id': spec.bundle_id, **settings, 'summary': summary}
    write_json(args.out, {**results, 'episodes': episode_table(episodes)})
    print_per_task(summary)
    low, high = summary['success_ci95']
    print(f'success {summary["successes"]}/{summary["episodes"]} (95% CI {low:.0%}-{high:.0%}) -> {args.out}')


if __name__ == '__main__':
    main()
