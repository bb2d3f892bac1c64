#!/usr/bin/env python3
"""A diagnostic copy of a multi-task dataset: the task as a one-hot appended to `observation.state`.

Trained on this copy, a policy gets the task's identity as directly as the object positions it must choose between.
If its language probe (`language_probe.py --task-onehot`) stays as weak as with the instruction alone, the selection
itself (which cube, which target) is what the model does not learn, whatever carries the task.

    python scripts/task_onehot_dataset.py outputs/ablation_multitask/dataset outputs/lang_probe/dataset_onehot
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adamoe_ros.sim.tasks import scene_def

STATE = 'observation.state'


def task_of_phrase(scene: str) -> dict[str, int]:
    """Index among the scene's tasks of every training phrase."""
    return {phrase: i for i, task in enumerate(scene_def(scene).tasks) for phrase in task.phrases('train')}


def scene_onehots(phrases: dict[str, int], scene: str) -> np.ndarray:
    """One-hot of the scene task of each dataset task_index, (dataset tasks, scene tasks)."""
    of_phrase, count = task_of_phrase(scene), len(scene_def(scene).tasks)
    onehot = np.zeros((len(phrases), count), dtype=np.float32)
    for phrase, index in phrases.items():
        onehot[index, of_phrase[phrase]] = 1.0
    return onehot


def append_to_column(table: pa.Table, name: str, extra: np.ndarray) -> pa.Table:
    """Append `extra` (rows, k) to the list column `name`, keeping its element type."""
    column = table.column(name)
    values = np.concatenate([np.stack(column.to_numpy(zero_copy_only=False)), extra], axis=1)
    new = pa.array(list(values), type=column.type)
    return table.set_column(table.schema.get_field_index(name), name, new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('source', type=Path)
    parser.add_argument('destination', type=Path)
    parser.add_argument('--scene', default='multitask')
    args = parser.parse_args()
    if args.destination.exists():
        raise SystemExit(f'{args.destination} exists')
    shutil.copytree(args.source, args.destination)
    root = args.destination
    tasks = pq.read_table(root / 'meta' / 'tasks.parquet').to_pandas()
    phrases = dict(zip(tasks.index, tasks['task_index'], strict=True))  # phrase -> the dataset's task_index
    onehot = scene_onehots(phrases, args.scene)
    names = [f'task_{task.name}' for task in scene_def(args.scene).tasks]

    frames = []
    for file in sorted((root / 'data').rglob('*.parquet')):
        table = pq.read_table(file)
        extra = onehot[table.column('task_index').to_numpy()]
        pq.write_table(append_to_column(table, STATE, extra), file)
        frames.append(extra)
    frames = np.concatenate(frames)

    # Per-episode stats: the one-hot is constant within an episode.
    for file in sorted((root / 'meta' / 'episodes').rglob('*.parquet')):
        table = pq.read_table(file)
        per_episode = np.stack([onehot[phrases[episode[0]]] for episode in table.column('tasks').to_pylist()])
        for stat in ('min', 'max', 'mean', 'q01', 'q10', 'q50', 'q90', 'q99'):
            table = append_to_column(table, f'stats/{STATE}/{stat}', per_episode)
        table = append_to_column(table, f'stats/{STATE}/std', np.zeros_like(per_episode))
        pq.write_table(table, file)

    stats_file = root / 'meta' / 'stats.json'
    stats = json.loads(stats_file.read_text())
    for stat, value in {
        'min': frames.min(0),
        'max': frames.max(0),
        'mean': frames.mean(0),
        'std': frames.std(0),
        **{f'q{q:02d}': np.quantile(frames, q / 100, axis=0) for q in (1, 10, 50, 90, 99)},
    }.items():
        stats[STATE][stat] = [*stats[STATE][stat], *value.tolist()]
    stats_file.write_text(json.dumps(stats, indent=4))

    info_file = root / 'meta' / 'info.json'
    info = json.loads(info_file.read_text())
    feature = info['features'][STATE]
    feature['shape'] = [feature['shape'][0] + len(names)]
    feature['names'] = [*feature['names'], *names]
    info_file.write_text(json.dumps(info, indent=4))
    (root / 'DONE.json').unlink(missing_ok=True)  # the ablation's marker: this copy is not its dataset
    print(f'{root}: {STATE} now {feature["shape"][0]} values, the last {len(names)} the task ({", ".join(names)})')


if __name__ == '__main__':
    main()
