"""What an evaluation episode is told: the instruction per seed, its phrasing, and the swapped-instruction mode.

The scene draws each episode's task from the seed (tasks.SceneDef.task_for_seed). Evaluation then says that task
in its canonical words, in a train phrase or in a held-out paraphrase; or, to show that the policy uses language,
says the *next* task's instruction instead (swap) and scores both the instructed task and the scene's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from adamoe_ros.sim.tasks import SceneDef, TaskDef

PHRASINGS: tuple[str, ...] = ('canonical', 'train', 'held_out')


@dataclass(frozen=True)
class EpisodeInstruction:
    """The instructed task and its words, and the task the scene drew for the seed (they differ when swapped)."""

    task: TaskDef  # what the instruction asks for: the episode's success
    scene_task: TaskDef  # what the scene would otherwise be scored on
    instruction: str

    @property
    def swapped(self) -> bool:
        """True when the instruction names another task than the scene's."""
        return self.task != self.scene_task


def episode_instruction(
    scene: SceneDef, seed: int, phrasing: str = 'canonical', swap: bool = False
) -> EpisodeInstruction:
    """Return what episode `seed` is told; phrases rotate with the seed, so every phrase of a task gets used."""
    if phrasing not in PHRASINGS:
        raise ValueError(f'unknown phrasing {phrasing!r} (use one of {list(PHRASINGS)})')
    if swap and len(scene.tasks) < 2:
        raise ValueError(f'scene {scene.name!r} has one task: there is no other instruction to swap in')
    scene_task = scene.task_for_seed(seed)
    task = scene.swapped_task(scene_task) if swap else scene_task
    if phrasing == 'canonical':
        return EpisodeInstruction(task, scene_task, task.instruction)
    phrases = task.phrases(phrasing)
    if not phrases:
        raise ValueError(f'task {task.name!r} has no {phrasing} phrases')
    return EpisodeInstruction(task, scene_task, phrases[(seed // len(scene.tasks)) % len(phrases)])


def task_seeds(scene: SceneDef, task_name: str | None, first_seed: int, count: int) -> list[int]:
    """Return the first `count` seeds from `first_seed` on whose scene task is `task_name` (one task's evaluation).

    Without a task name: `count` consecutive seeds, which cycle through the scene's tasks.
    """
    if task_name is None:
        return list(range(first_seed, first_seed + count))
    task = scene.task(task_name)  # KeyError naming the scene's tasks
    seeds: list[int] = []
    seed = first_seed
    while len(seeds) < count:
        if scene.task_for_seed(seed) == task:
            seeds.append(seed)
        seed += 1
    return seeds
