"""A LeRobot video dataset whose frames are decoded once, to files under the dataset, instead of at every sample.

`LeRobotDataset` decodes each sample's camera frames from the episode's video and reads its action chunk row by
row from Arrow: on this machine's small multi-task dataset that is more time per batch than the model's step
(training/benchmarks/bench_data.py measures both side by side). `DecodedDataset` gives the same items, equal
tensor for tensor (tests/test_decoded_dataset.py), from numpy columns held in memory and uint8 frames memory-mapped
from `<dataset root>/.decoded/`, written once per episode and camera (by LeRobot's own decoder) and shared by every
training job on that dataset. The cache costs H x W x 3 bytes per frame and camera on disk; it lives inside the
dataset, so a dataset recorded again in its place starts without it.
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

CACHE_DIR = '.decoded'


class DecodedDataset(torch.utils.data.Dataset):
    """The items of `dataset` (episode filter and delta timestamps included) without decoding at run time."""

    def __init__(self, dataset: Any) -> None:
        from lerobot.datasets.video_utils import decode_video_frames

        self._decode = decode_video_frames
        self.dataset = dataset
        self.meta = dataset.meta
        reader = dataset._ensure_reader()  # LeRobot's own episode filter and delta indices
        if reader.hf_dataset is None:
            reader.load_and_activate()
        self.delta_indices: dict[str, list[int]] | None = reader.delta_indices
        table = reader.hf_dataset.with_format('numpy')[:]
        self.columns: dict[str, np.ndarray] = {key: np.asarray(table[key]) for key in reader.hf_dataset.column_names}
        absolute = self.columns['index']
        self.relative = np.full(self.meta.total_frames, -1, dtype=np.int64)
        self.relative[absolute] = np.arange(len(absolute))
        # Each episode's [from, to) frame rows, read once: the per-sample path then touches no Arrow metadata.
        self.episode_rows = np.array([(e['dataset_from_index'], e['dataset_to_index']) for e in self.meta.episodes])
        self.frames = {key: self._decoded_frames(key) for key in self.meta.video_keys}

    def __len__(self) -> int:
        return len(self.columns['index'])

    def __getitem__(self, idx: int) -> dict[str, Any]:
        item = {key: torch.from_numpy(np.array(column[idx])) for key, column in self.columns.items()}
        start, end = self.episode_rows[int(item['episode_index'])]
        at = int(item['index'])
        query = {}
        for key, deltas in (self.delta_indices or {}).items():
            wanted = np.asarray([at + d for d in deltas])
            query[key] = np.clip(wanted, start, end - 1)
            item[f'{key}_is_pad'] = torch.from_numpy((wanted < start) | (wanted >= end))
            if key not in self.frames:
                item[key] = torch.from_numpy(self.columns[key][self.relative[query[key]]])
        for key, frames in self.frames.items():
            at_frames = query.get(key, np.asarray([at]))
            item[key] = (torch.from_numpy(frames[at_frames]) / 255.0).type(torch.float32).squeeze(0)
        transforms = self.dataset.image_transforms
        if transforms is not None:
            for key in self.meta.camera_keys:
                item[key] = transforms(item[key])
        item['task'] = self.meta.tasks.iloc[int(item['task_index'])].name
        return item

    def _decoded_frames(self, key: str) -> np.memmap:
        """Every frame of camera `key`, (total frames, C, H, W) uint8, decoding what is not on disk yet."""
        height, width, channels = self.meta.features[key]['shape']
        folder = Path(self.dataset.root) / CACHE_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f'{key}.npy'
        shape = (self.meta.total_frames, channels, height, width)
        done = folder / f'{key}.done'
        with open(folder / '.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second job on the same dataset waits, then reads the same file
            if not done.exists():
                log.info('decoding %s once into %s (%.1f GB)', key, path, np.prod(shape) / 1e9)
                frames = np.lib.format.open_memmap(path, mode='w+', dtype=np.uint8, shape=shape)
                for episode in range(self.meta.total_episodes):
                    frames[self._episode_rows(episode)] = self._decode_episode(key, episode)
                frames.flush()
                del frames
                done.touch()
        return np.load(path, mmap_mode='r')

    def _episode_rows(self, episode: int) -> slice:
        return slice(*self.episode_rows[episode])

    def _decode_episode(self, key: str, episode: int) -> np.ndarray:
        info = self.meta.episodes[episode]
        rows = self._episode_rows(episode)
        timestamps = [info[f'videos/{key}/from_timestamp'] + i / self.meta.fps for i in range(rows.stop - rows.start)]
        video = Path(self.dataset.root) / self.meta.get_video_file_path(episode, key)
        frames = self._decode(
            video, timestamps, self.dataset.tolerance_s, self.dataset._video_backend, return_uint8=True
        )
        return frames.numpy()
