#!/usr/bin/env python3
"""Does a multi-task policy read its instruction? The same observation and noise with every task's instruction.

For frames drawn from the demonstrations, the checkpoint predicts one chunk per task instruction (same noise seed), and
each is compared with the demonstrated chunk: a policy that reads its instruction is nearest the demonstration with the
right one. Prints a line per frame and the count of frames where the right instruction was nearest (chance: 1/tasks).

    python scripts/language_probe.py CHECKPOINT/pretrained_model DATASET_ROOT [--frames 24] [--task-onehot]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

from adamoe_ros.sim.tasks import scene_def
from lerobot_policy_adamoe.export.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', type=Path)
    parser.add_argument('dataset', type=Path)
    parser.add_argument('--repo-id', default='local/so101_multitask')
    parser.add_argument('--scene', default='multitask')
    parser.add_argument('--frames', type=int, default=24)
    parser.add_argument(
        '--task-onehot',
        action='store_true',
        help='the state ends with the task as a one-hot (task_onehot_dataset.py): give each candidate task its own',
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    checkpoint = load_checkpoint(args.checkpoint)
    scene = scene_def(args.scene)
    fps = LeRobotDatasetMetadata(args.repo_id, root=args.dataset).fps
    chunk_times = [i / fps for i in range(checkpoint.policy.config.chunk_size)]  # the demonstrated chunk
    dataset = LeRobotDataset(args.repo_id, root=args.dataset, delta_timestamps={'action': chunk_times})
    rows = []
    for index in np.random.default_rng(0).choice(len(dataset), args.frames, replace=False):
        item = dataset[int(index)]
        told = next(t.name for t in scene.tasks if item['task'] in t.phrases('train'))
        observation = {k: v.unsqueeze(0) for k, v in item.items() if k.startswith('observation')}
        predicted = {}
        for index, task in enumerate(scene.tasks):
            if args.task_onehot:
                state = observation['observation.state'].clone()
                state[:, -len(scene.tasks) :] = torch.nn.functional.one_hot(torch.tensor(index), len(scene.tasks))
                observation['observation.state'] = state
            batch = checkpoint.preprocessor({**observation, 'task': [task.instruction]})
            torch.manual_seed(0)  # the same noise for every instruction
            with torch.no_grad():
                chunk = checkpoint.policy.predict_action_chunk(batch)
            predicted[task.name] = checkpoint.postprocessor(chunk)[0].numpy()
        error = {name: float(np.abs(chunk - item['action'].numpy()).mean()) for name, chunk in predicted.items()}
        other = float(np.mean([e for name, e in error.items() if name != told]))
        nearest = min(error, key=error.get)
        rows.append((nearest == told, error[told], other))
        print(f'{told:20s} nearest={nearest:20s} error with it {error[told]:.4f}, with the others {other:.4f}')
    hits, right, others = sum(r[0] for r in rows), np.mean([r[1] for r in rows]), np.mean([r[2] for r in rows])
    print(f'right instruction nearest the demonstration: {hits} of {len(rows)} (chance 1/{len(scene.tasks)})')
    print(f'mean abs error, right vs other instructions: {right:.4f} {others:.4f}')


if __name__ == '__main__':
    main()
