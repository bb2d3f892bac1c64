"""Policy rollouts with the engine driving the simulation directly (no ROS), for fast, exact evaluations.

The sim is paused while a chunk is computed, so these numbers measure the policy alone; the ROS path
(`ros_eval`) measures the deployed system with real latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from adamoe_contract.backend import Observation, PolicyBackend
from adamoe_ros.closed_loop.instructions import EpisodeInstruction
from adamoe_ros.closed_loop.phases import gripper_cube_distance, task_phase
from adamoe_ros.closed_loop.protocol import EPISODE_TIME_S
from adamoe_ros.policy.chunk_queue import DEFAULT_REFILL_THRESHOLD
from adamoe_ros.sim.so101 import So101PickPlaceSim


@dataclass
class RoutingRecord:
    """Expert usage of one chunk and where in the task it was computed."""

    time: float
    phase: str
    token_fraction: np.ndarray
    mean_weight: np.ndarray
    token_expert: np.ndarray | None = None  # (L, T) first-choice expert per action token, last flow step
    token_weight: np.ndarray | None = None


@dataclass
class EpisodeResult:
    """Outcome of one evaluated episode: success is on the instructed task."""

    seed: int
    success: bool
    lifted: bool
    episode_time: float
    inference_times: list[float] = field(default_factory=list)
    routing: list[RoutingRecord] = field(default_factory=list)
    frames: list[dict[str, np.ndarray]] = field(default_factory=list)
    task: str = ''  # the instructed task
    instruction: str = ''
    scene_task: str = ''  # the task the scene drew for the seed (another one when the instruction was swapped)
    scene_task_success: bool = False  # solved the scene's task (equals success unless swapped)

    def set_instruction(self, told: EpisodeInstruction) -> None:
        """Record what the episode was told."""
        self.task, self.instruction, self.scene_task = told.task.name, told.instruction, told.scene_task.name


def sim_state(sim: So101PickPlaceSim, state_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Assemble the policy state vector (joint positions, then privileged cube positions) in bundle order."""
    joints = dict(zip(sim.joint_names, sim.joint_positions(), strict=True))
    cube = dict(zip(sim.extra_state_names, sim.extra_state(), strict=True))
    values = []
    for name in state_names:
        if name in joints:
            values.append(joints[name])
        elif name in cube:
            values.append(cube[name])
        else:
            raise KeyError(f'the sim provides no state named {name!r}')
    return np.asarray(values, dtype=np.float32)


def chunk_noise_seed(noise_seed: int, episode_seed: int, tick: int) -> int:
    """Flow-noise seed of the chunk computed at `tick` of episode `episode_seed`.

    Drawn from all three so that every episode gets its own noise, as over ROS: a seed shared by all episodes
    (noise_seed + tick) made a whole evaluation ride on one draw, and its success moved with that draw.
    """
    return int(np.random.SeedSequence([noise_seed, episode_seed, tick]).generate_state(1)[0])


def run_policy_episode(
    engine: PolicyBackend,
    sim: So101PickPlaceSim,
    seed: int,
    instruction: EpisodeInstruction | str,
    *,
    max_time: float = EPISODE_TIME_S,
    refill_threshold: float = DEFAULT_REFILL_THRESHOLD,
    noise_seed: int | None = None,
    frame_every: int = 0,
) -> EpisodeResult:
    """Reset with a seed and execute chunks ('latest' mode) until a task is solved or max_time passes.

    instruction: what the episode is told (instructions.episode_instruction), or words for the scene's own task.
    Both the instructed task and the scene's task are judged; the episode ends when either is solved.
    """
    spec = engine.spec
    sim.reset(seed)
    told = (
        instruction
        if isinstance(instruction, EpisodeInstruction)
        else EpisodeInstruction(sim.task, sim.task, instruction)
    )
    steps_per_tick = max(int(round(spec.dt / sim.dt)), 1)
    result = EpisodeResult(seed=seed, success=False, lifted=False, episode_time=max_time)
    result.set_instruction(told)
    queue: list[np.ndarray] = []
    tick = 0
    while sim.time < max_time:
        images = {cam: sim.render(cam, *spec.image_size[cam]) for cam in spec.camera_names}
        if frame_every and tick % frame_every == 0:
            result.frames.append(images)
        if len(queue) <= refill_threshold * spec.horizon:
            out = engine.infer(
                Observation(images=images, state=sim_state(sim, spec.state_names), instruction=told.instruction),
                noise_seed=None if noise_seed is None else chunk_noise_seed(noise_seed, seed, tick),
            )
            queue = list(out.actions)
            result.inference_times.append(out.timings['total'])
            status = sim.task_status(told.task)
            result.routing.append(
                RoutingRecord(
                    time=sim.time,
                    phase=task_phase(status, gripper_cube_distance(sim, told.task.cube), status.distance_to_goal),
                    token_fraction=out.routing.token_fraction,
                    mean_weight=out.routing.mean_weight,
                    token_expert=out.routing.token_expert,
                    token_weight=out.routing.token_weight,
                )
            )
        sim.set_joint_targets(queue.pop(0))
        sim.step(steps_per_tick)
        tick += 1
        status = sim.task_status(told.task)
        result.lifted |= status.lifted
        result.scene_task_success = status.success if told.task == told.scene_task else sim.task_status().success
        if status.success or result.scene_task_success:
            result.success, result.episode_time = status.success, sim.time
            break
    return result
