"""LeRobot v3 dataset writer where every saved episode is durable on disk when save returns.

LeRobot keeps its parquet writers open across episodes and writes their footers only in finalize(), so a killed
process would lose every episode of the session. Here each save is followed by finalize() and a fresh
LeRobotDataset.resume(): resume starts new data/meta/video files, so an episode's files are closed once saved and a
kill loses at most the episode being recorded.
"""

import errno
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from lerobot.configs.video import RGBEncoderConfig
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from adamoe_ros.recorder.aligner import AlignedFrame
from adamoe_ros.recorder.config import RecorderConfig
from adamoe_ros.ros_image import to_rgb8

_log = logging.getLogger(__name__)

# SVT-AV1 (LeRobot's default codec) aborts the whole process on frames below 32 px, so refuse them up front.
MIN_IMAGE_SIDE = 32
# LeRobot logs and swallows a failed PNG write (a truncated frame then breaks the encode at save), so a frame is
# refused while less than this is free besides its own raw size.
MIN_FREE_BYTES = 1 << 20
# Frames per camera the streaming encoder may hold (LeRobot's default, about 1 s at 30 fps).
ENCODER_QUEUE_FRAMES = 30
# LeRobot 0.6.1's streaming encoder computes no image statistics for a one-frame episode, so that episode's metadata
# lacks the image stats columns and the next episode's save makes meta/episodes unreadable (the schemas differ).
# One frame holds no motion to learn from either.
MIN_EPISODE_FRAMES = 2


class EncoderBehindError(RuntimeError):
    """A camera's streaming video encoder has no room for another frame."""


class DiskFullError(OSError):
    """The dataset's filesystem is (nearly) full."""

    def __init__(self, root: Path, free: int, what: str) -> None:
        super().__init__(errno.ENOSPC, f'no space left on device for {root} ({free / 1e6:.1f} MB free): {what}')


class _SavePoint:
    """The dataset's files before a save, so a failed save (disk full, encoder error) can be undone.

    A save after resume() only adds files and rewrites the small files directly in meta/ (info.json, stats.json,
    tasks.parquet); undoing it removes the added files and writes those back.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._files = {p for p in root.rglob('*') if p.is_file() and not p.is_relative_to(root / 'images')}
        self._meta = {p: p.read_bytes() for p in (root / 'meta').glob('*') if p.is_file()}

    def restore(self) -> None:
        for path in self._root.rglob('*'):
            if path.is_file() and path not in self._files and not path.is_relative_to(self._root / 'images'):
                path.unlink()
        for path, content in self._meta.items():
            if not path.is_file() or path.read_bytes() != content:
                path.write_bytes(content)


class DatasetMismatchError(ValueError):
    """An existing dataset at the root has other features than the configuration asks for, or is damaged."""


def integrity_problems(root: Path, info: dict) -> list[str]:
    """List what makes a dataset unsafe to append to.

    Unreadable parquet files and episode-count mismatches (a process killed during a save), and episode metadata
    without image statistics (a one-frame episode, see MIN_EPISODE_FRAMES), which the next save would trip over.
    """
    problems = []
    episodes = 0
    videos = [key for key, feature in info.get('features', {}).items() if feature.get('dtype') == 'video']
    for path in sorted(root.glob('meta/episodes/**/*.parquet')) + sorted(root.glob('data/**/*.parquet')):
        try:
            metadata = pq.read_metadata(path)
        except (OSError, pa.ArrowException) as error:
            problems.append(f'{path.relative_to(root)} is unreadable ({error})')
            continue
        if path.is_relative_to(root / 'meta'):
            episodes += metadata.num_rows
            columns = set(metadata.schema.to_arrow_schema().names)
            unstated = [key for key in videos if f'stats/{key}/mean' not in columns]
            if unstated:
                problems.append(f'{path.relative_to(root)} has no image statistics for {unstated}')
    if not problems and episodes != info.get('total_episodes', 0):
        problems.append(f'meta/info.json counts {info.get("total_episodes")} episodes, meta/episodes holds {episodes}')
    return problems


@dataclass(frozen=True)
class SavedEpisode:
    """Result of one durable save."""

    episode_index: int
    num_frames: int
    seconds: float


def dataset_features(config: RecorderConfig, image_shapes: dict[str, tuple[int, int, int]]) -> dict:
    """LeRobot features: observation.images.<cam> (video), observation.state (joints + extra), action (joints)."""
    features: dict = {
        f'observation.images.{name}': {'dtype': 'video', 'shape': shape, 'names': ['height', 'width', 'channels']}
        for name, shape in image_shapes.items()
    }
    state_names = config.state_names
    features['observation.state'] = {'dtype': 'float32', 'shape': (len(state_names),), 'names': state_names}
    features['action'] = {'dtype': 'float32', 'shape': (len(config.joint_names),), 'names': list(config.joint_names)}
    return features


def frame_from_aligned(
    config: RecorderConfig, aligned: AlignedFrame, task: str, image_shapes: dict[str, tuple[int, int, int]] | None
) -> dict:
    """LeRobot frame dict of an aligned sample; images decoded to RGB and resized to the dataset's size."""
    frame: dict = {}
    for cam in config.cameras:
        image = to_rgb8(aligned.values[f'camera:{cam.name}'])
        target = image_shapes.get(cam.name) if image_shapes else None
        if target is None and any(config.image_size):
            target = (*config.image_size, 3)
        if target is not None and image.shape[:2] != tuple(target[:2]):
            image = cv2.resize(image, (target[1], target[0]), interpolation=cv2.INTER_AREA)
        frame[f'observation.images.{cam.name}'] = image
    state = [aligned.values['joint_states']]
    if config.extra_state_topic:
        state.append(aligned.values['extra_state'])
    frame['observation.state'] = np.concatenate(state).astype(np.float32)
    frame['action'] = np.asarray(aligned.values['action'], np.float32)
    frame['task'] = task
    return frame


class EpisodeDatasetWriter:
    """Owns one LeRobotDataset in write mode; call from one thread only."""

    def __init__(self, config: RecorderConfig, parallel_encoding: bool = False) -> None:
        self.config = config
        self.root = config.resolved_root()
        self._parallel_encoding = parallel_encoding
        self._encoder = RGBEncoderConfig(vcodec=config.vcodec)
        self._dataset: LeRobotDataset | None = None
        self._frames_in_episode = 0
        self.image_shapes: dict[str, tuple[int, int, int]] | None = None
        if (self.root / 'meta' / 'info.json').is_file():
            self._resume_existing()
        elif self.root.exists() and any(self.root.iterdir()):
            raise DatasetMismatchError(
                f'{self.root} exists and is not a LeRobot dataset (no meta/info.json); '
                'choose another dataset_root or empty it'
            )
        elif any(config.image_size):
            self._create({cam.name: (*config.image_size, 3) for cam in config.cameras})

    @property
    def saved_episodes(self) -> int:
        """Episodes on disk (including earlier sessions)."""
        return 0 if self._dataset is None else self._dataset.meta.total_episodes

    def add(self, aligned: AlignedFrame, task: str) -> None:
        """Add one aligned frame to the current episode (creates the dataset on the very first frame).

        Raises DiskFullError, keeping the frames added before, when the disk cannot hold the frame.
        """
        frame = frame_from_aligned(self.config, aligned, task, self.image_shapes)
        self._check_free_space(
            sum(frame[f'observation.images.{cam.name}'].nbytes for cam in self.config.cameras), 'frame not staged'
        )
        if self._dataset is None:
            self._create({cam.name: frame[f'observation.images.{cam.name}'].shape for cam in self.config.cameras})
        self._check_encoder_room()
        self._dataset.add_frame(frame)
        self._frames_in_episode += 1

    def save_episode(self) -> SavedEpisode:
        """Encode and write the current episode, closing its files; raises ValueError when it is empty."""
        if self._dataset is None or self._frames_in_episode == 0:
            raise ValueError('the episode has no frames to save')
        if self._frames_in_episode < MIN_EPISODE_FRAMES:
            raise ValueError(
                f'the episode has {self._frames_in_episode} frame, fewer than the {MIN_EPISODE_FRAMES} a LeRobot '
                'episode needs (image statistics)'
            )
        start = time.monotonic()
        index = self._dataset.meta.total_episodes
        frames = self._frames_in_episode
        save_point = _SavePoint(self.root)
        try:
            self._dataset.save_episode(parallel_encoding=self._parallel_encoding)
            self._frames_in_episode = 0
            self._dataset.finalize()  # writes the parquet footers: the episode is now complete on disk
        except Exception:
            # Back to the last durable state: the earlier episodes stay loadable; the caller discards this one.
            save_point.restore()
            shutil.rmtree(self.root / 'images', ignore_errors=True)  # the episode's staged frames
            self._frames_in_episode = 0
            self._dataset = self._open_resume()
            self._check_free_space(0, 'the episode could not be saved; the episodes saved before are intact')
            raise
        self._dataset = self._open_resume()
        return SavedEpisode(index, frames, time.monotonic() - start)

    def discard_episode(self) -> int:
        """Drop the frames of the current episode; returns how many were dropped."""
        dropped = self._frames_in_episode
        if self._dataset is not None and dropped:
            self._dataset.clear_episode_buffer(delete_images=True)
        self._frames_in_episode = 0
        return dropped

    def close(self) -> None:
        """Discard an unsaved episode and close the files (saved episodes are already durable)."""
        if self._dataset is None:
            return
        if self._frames_in_episode:
            _log.warning('closing with %d unsaved frames: the episode is discarded', self._frames_in_episode)
            self.discard_episode()
        self._dataset.finalize()
        self._dataset = None

    def _check_encoder_room(self) -> None:
        """Refuse a frame unless every camera's streaming encoder can take it.

        LeRobot's StreamingVideoEncoder drops a frame of one camera silently when that camera's queue is full, which
        would shift its video against the other cameras and the data. This writer is the queues' only producer, so
        room in every queue now means the frame goes into all of them. (LeRobot 0.6.1 has no public accessor.)
        """
        encoder = self._dataset.writer._streaming_encoder
        if encoder is None or not encoder._episode_active:
            return
        full = [key for key, frames in encoder._frame_queues.items() if frames.full()]
        if full:
            raise EncoderBehindError(f'the video encoder of {full} is {encoder.queue_maxsize} frames behind')

    def _check_free_space(self, needed: int, what: str) -> None:
        folder = next(p for p in (self.root, *self.root.parents) if p.exists())  # the root may be nested, unmade
        free = shutil.disk_usage(folder).free
        if free < needed + MIN_FREE_BYTES:
            raise DiskFullError(self.root, free, what)

    def _create(self, image_shapes: dict[str, tuple[int, int, int]]) -> None:
        small = {name: shape[:2] for name, shape in image_shapes.items() if min(shape[:2]) < MIN_IMAGE_SIDE}
        if small:
            raise ValueError(
                f'camera images {small} are below {MIN_IMAGE_SIDE} px, which the video encoder cannot '
                'encode; set image_size to a larger [height, width]'
            )
        self.image_shapes = {name: tuple(int(v) for v in shape) for name, shape in image_shapes.items()}
        if self.root.exists():
            self.root.rmdir()  # empty (checked in __init__); LeRobot insists on creating it
        self._dataset = LeRobotDataset.create(
            self.config.repo_id,
            fps=self.config.fps,
            features=dataset_features(self.config, self.image_shapes),
            root=self.root,
            robot_type=self.config.robot_type,
            use_videos=True,
            rgb_encoder=self._encoder,
            streaming_encoding=self.config.streaming_encoding,
            encoder_queue_maxsize=ENCODER_QUEUE_FRAMES,
        )
        _log.info('created dataset %s at %s', self.config.repo_id, self.root)

    def _resume_existing(self) -> None:
        info = json.loads((self.root / 'meta' / 'info.json').read_text())
        problems = integrity_problems(self.root, info)
        if problems:
            raise DatasetMismatchError(
                f'dataset at {self.root} is damaged, probably by a process killed while saving an episode: '
                + '; '.join(problems)
                + '. Record into another dataset_root (or repair/remove the last episode).'
            )
        self._check_compatible(info)
        # Frames staged by a killed session (PNG files of its unsaved episode) would be picked up by the next save;
        # its partial streaming videos (LeRobot's temporary folders in the root) are garbage.
        shutil.rmtree(self.root / 'images', ignore_errors=True)
        for folder in self.root.glob('tmp*'):
            if folder.is_dir() and all(p.name.endswith('_streaming.mp4') for p in folder.iterdir()):
                shutil.rmtree(folder)
        self.image_shapes = {
            cam.name: tuple(info['features'][f'observation.images.{cam.name}']['shape']) for cam in self.config.cameras
        }
        self._dataset = self._open_resume()
        _log.info('resuming dataset %s at %s (%d episodes)', self.config.repo_id, self.root, self.saved_episodes)

    def _open_resume(self) -> LeRobotDataset:
        return LeRobotDataset.resume(
            self.config.repo_id,
            root=self.root,
            rgb_encoder=self._encoder,
            streaming_encoding=self.config.streaming_encoding,
            encoder_queue_maxsize=ENCODER_QUEUE_FRAMES,
        )

    def _check_compatible(self, info: dict) -> None:
        features = info.get('features', {})
        expected = dataset_features(self.config, {cam.name: (0, 0, 3) for cam in self.config.cameras})
        problems = []
        if info.get('fps') != self.config.fps:
            problems.append(f'fps {info.get("fps")} != {self.config.fps}')
        for key, feature in expected.items():
            if key not in features:
                problems.append(f'missing feature {key}')
            elif feature['dtype'] != 'video' and list(features[key].get('names') or []) != feature['names']:
                problems.append(f'{key} names {features[key].get("names")} != {feature["names"]}')
        extra = sorted(k for k, f in features.items() if f.get('dtype') == 'video' and k not in expected)
        if extra:
            problems.append(f'cameras {extra} are not configured')
        if problems:
            raise DatasetMismatchError(
                f'existing dataset at {self.root} does not match the configuration: ' + '; '.join(problems)
            )
