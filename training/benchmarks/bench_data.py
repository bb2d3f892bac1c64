"""Training-batch loading: LeRobotDataset (decodes at every sample) vs DecodedDataset (decoded once), side by side.

Both read the same random batches (an action chunk per sample, as adamoe-train asks); rounds alternate the two, so
machine load hits both alike. Without --dataset-root a small synthetic video dataset is generated. The first
DecodedDataset on a dataset decodes it into <root>/.decoded/ (timed separately, once).

    python training/benchmarks/bench_data.py [--dataset-root DIR --repo-id ID] [--rounds 10] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import default_collate

from lerobot_policy_adamoe.decoded_dataset import DecodedDataset
from lerobot_policy_adamoe.testing import make_synthetic_dataset


def load_batch(dataset: torch.utils.data.Dataset, indices: list[int]) -> float:
    start = time.perf_counter()
    default_collate([dataset[i] for i in indices])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset-root', type=Path)
    parser.add_argument('--repo-id', default='local/adamoe_synthetic')
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--chunk', type=int, default=50, help='action chunk per sample (SmolVLA: 50)')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    with tempfile.TemporaryDirectory() as tmp:
        root = args.dataset_root
        if root is None:
            root = Path(tmp) / 'synthetic'
            make_synthetic_dataset(
                root, num_episodes=6, frames_per_episode=60, image_hw=(128, 128), image_dtype='video'
            )
        fps = LeRobotDataset(args.repo_id, root=root).meta.fps
        delta = {'action': [i / fps for i in range(args.chunk)]}
        lerobot = LeRobotDataset(args.repo_id, root=root, delta_timestamps=delta)
        start = time.perf_counter()
        decoded = DecodedDataset(LeRobotDataset(args.repo_id, root=root, delta_timestamps=delta))
        opened_s = time.perf_counter() - start
        variants = {'lerobot': lerobot, 'decoded': decoded}
        rng = random.Random(0)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for dataset in variants.values():  # warm-up
            load_batch(dataset, rng.sample(range(len(lerobot)), args.batch_size))
        for _ in range(args.rounds):
            indices = rng.sample(range(len(lerobot)), args.batch_size)
            for name, dataset in variants.items():
                times[name].append(load_batch(dataset, indices))
    print(f'{root}: {len(lerobot)} frames, {len(lerobot.meta.video_keys)} cameras; torch threads {args.threads}')
    print(f'DecodedDataset opened in {opened_s:.1f} s (decoding the videos the first time)')
    print(f'batch of {args.batch_size}, action chunk {args.chunk}, median of {args.rounds} rounds:')
    base = statistics.median(times['lerobot'])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f'  {name:<8} {median * 1e3:8.1f} ms per batch   ratio {median / base:.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
