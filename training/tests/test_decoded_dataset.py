"""DecodedDataset gives LeRobotDataset's items exactly, from frames decoded once and kept under the dataset."""

import pytest
import torch

from lerobot_policy_adamoe.decoded_dataset import CACHE_DIR, DecodedDataset
from lerobot_policy_adamoe.testing import TASKS, make_synthetic_dataset


@pytest.fixture(scope='module')
def video_dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('datasets') / 'video'
    make_synthetic_dataset(root, num_episodes=3, frames_per_episode=12, image_hw=(32, 48), image_dtype='video')
    return root


def open_dataset(root, **kwargs):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset('local/adamoe_synthetic', root=root, **kwargs)


def assert_same_items(expected, decoded):
    assert len(decoded) == len(expected)
    for i in range(len(expected)):
        want, got = expected[i], decoded[i]
        assert sorted(got) == sorted(want)
        for key, value in want.items():
            if isinstance(value, torch.Tensor):
                assert got[key].dtype == value.dtype and got[key].shape == value.shape, (i, key)
                assert torch.equal(got[key], value), (i, key)
            else:
                assert got[key] == value, (i, key)


@pytest.mark.parametrize(
    'delta_timestamps',
    [
        None,
        # an action chunk running past the episode's end (padded) and two frames of one camera (one before the start)
        {'action': [i / 10 for i in range(5)], 'observation.images.front': [-0.1, 0.0], 'observation.state': [0.0]},
    ],
)
def test_items_equal_lerobots_decoded_at_every_sample(video_dataset_root, delta_timestamps):
    assert_same_items(
        open_dataset(video_dataset_root, delta_timestamps=delta_timestamps),
        DecodedDataset(open_dataset(video_dataset_root, delta_timestamps=delta_timestamps)),
    )


def test_an_episode_subset_reads_the_same_cache(video_dataset_root):
    def only_second_task(episode):
        return TASKS[1] in episode['tasks']

    delta = {'action': [i / 10 for i in range(5)]}
    subset = DecodedDataset(open_dataset(video_dataset_root, delta_timestamps=delta, episode_filter=only_second_task))
    assert {item['task'] for item in (subset[i] for i in range(len(subset)))} == {TASKS[1]}
    assert_same_items(open_dataset(video_dataset_root, delta_timestamps=delta, episode_filter=only_second_task), subset)


def test_frames_are_decoded_once(video_dataset_root):
    DecodedDataset(open_dataset(video_dataset_root))
    cached = sorted((video_dataset_root / CACHE_DIR).glob('*.npy'))
    assert [p.stem for p in cached] == sorted(open_dataset(video_dataset_root).meta.video_keys)
    written = {p: p.stat().st_mtime_ns for p in cached}
    DecodedDataset(open_dataset(video_dataset_root))
    assert {p: p.stat().st_mtime_ns for p in cached} == written
