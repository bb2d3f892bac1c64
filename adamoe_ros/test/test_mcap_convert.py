"""MCAP round trip: bags written with the mcap writer (CDR from rclpy) -> mcap_to_lerobot -> LeRobotDataset.

The bag's values encode their stamps (state = t, action = t + 1000, grey level = tick % 32 * 8), like the live test.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from mcap.writer import Writer
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from adamoe_ros.recorder.config import SO101
from adamoe_ros.recorder.mcap_convert import main
from adamoe_ros.ros_image import numpy_to_image
from adamoe_ros.tools.synthetic_source import LEADER_OFFSET, grey_level

PARAMS = Path(__file__).parents[1] / 'config' / 'record_so101.yaml'
RATE = 30
SIZE = (48, 64)


def msg_definition(type_name: str) -> bytes:
    package, _, name = type_name.split('/')
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(':'):
        path = Path(prefix) / 'share' / package / 'msg' / f'{name}.msg'
        if path.is_file():
            return path.read_bytes()
    return b''


class BagWriter:
    """Minimal rosbag2-style MCAP writer: ros2msg schemas, CDR messages from rclpy."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, 'wb')
        self._writer = Writer(self._file, chunk_size=64 * 1024)  # small chunks, like a long rosbag2 recording
        self._writer.start(profile='ros2', library='adamoe_ros test')
        self._channels: dict[str, int] = {}

    def write(self, topic: str, msg: object, log_time_ns: int) -> None:
        if topic not in self._channels:
            type_name = f'{type(msg).__module__.split(".")[0]}/msg/{type(msg).__name__}'
            schema = self._writer.register_schema(type_name, 'ros2msg', msg_definition(type_name))
            self._channels[topic] = self._writer.register_channel(topic, 'cdr', schema)
        self._writer.add_message(self._channels[topic], log_time_ns, serialize_message(msg), log_time_ns)

    def close(self) -> None:
        self._writer.finish()
        self._file.close()


def stamp(t_ns: int) -> Time:
    return Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)


def write_bag(path: Path, start_s: float, seconds: float, instruction: str | None, gap: range = range(0)) -> None:
    """30 Hz streams; the action is a JointTrajectory command with a zero stamp (log time is used)."""
    bag = BagWriter(path)
    if instruction is not None:
        bag.write('/instruction', String(data=instruction), round(start_s * 1e9) - 1)
    images = [numpy_to_image(np.full((*SIZE, 3), grey_level(k), np.uint8), 'rgb8') for k in range(32)]
    for tick in range(round(seconds * RATE)):
        t_ns = round((start_s + tick / RATE) * 1e9)
        t = t_ns / 1e9
        log_ns = t_ns + 2_000_000  # transport delay: header stamps, not log times, must decide alignment
        for cam in ('front', 'wrist'):
            image = images[tick % 32]
            image.header.stamp = stamp(t_ns)
            bag.write(f'/cameras/{cam}/image_raw', image, log_ns)
        if tick not in gap:
            state = JointState(name=list(SO101.joint_names), position=[t] * 6)
            state.header.stamp = stamp(t_ns)
            bag.write('/joint_states', state, log_ns)
        command = JointTrajectory(
            joint_names=list(reversed(SO101.joint_names)),
            points=[JointTrajectoryPoint(positions=[t + LEADER_OFFSET] * 6)],
        )
        bag.write('/leader/commands', command, t_ns)
        bag.write('/sim/cube_position', Float64MultiArray(data=[t, -t, 2 * t]), t_ns)
    bag.close()


def write_params(tmp_path: Path, root: Path) -> Path:
    text = PARAMS.read_text().replace('action_type: joint_state ', 'action_type: joint_trajectory ')
    text = text.replace('action_topic: leader/joint_states', 'action_topic: leader/commands')
    text = text.replace('dataset_root: ""', f'dataset_root: "{root}"')
    params = tmp_path / 'params.yaml'
    params.write_text(text)
    return params


def test_bags_convert_to_aligned_episodes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path / 'ds'
    write_bag(tmp_path / 'a.mcap', start_s=100.0, seconds=3.0, instruction='stack the cube', gap=range(40, 50))
    rosbag_dir = tmp_path / 'b_bag'
    rosbag_dir.mkdir()
    write_bag(rosbag_dir / 'b_bag_0.mcap', start_s=200.0, seconds=2.0, instruction=None)

    assert (
        main(
            [
                str(tmp_path / 'a.mcap'),
                str(rosbag_dir),
                '--params-file',
                str(write_params(tmp_path, root)),
                '--task',
                '',
            ]
        )
        == 2
    )  # the second bag has no instruction and no --task: clear error
    assert 'no instruction' in capsys.readouterr().err
    assert main([str(rosbag_dir), '--params-file', str(write_params(tmp_path, root)), '--task', 'push the cube']) == 0
    out = capsys.readouterr().out
    assert 'episode 1,' in out  # appended after the first bag's episode

    ds = LeRobotDataset('local/so101_teleop', root=root, video_backend='pyav')
    assert ds.meta.total_episodes == 2
    lengths = [ds.meta.episodes[i]['length'] for i in range(2)]
    # 3 s at 10 fps from the first common stamp: 30 grid points minus the ones inside the joint_states gap
    # (ticks 40-49 = +1.333..1.633 s: at +1.4, +1.5 and +1.6 s the nearest joint state is >= 66 ms away).
    assert lengths == [27, 20], lengths
    assert tuple(ds.meta.info['features']['observation.images.front']['shape']) == (*SIZE, 3)
    tasks = {ds[0]['task'], ds[len(ds) - 1]['task']}
    assert tasks == {'stack the cube', 'push the cube'}
    for episode, start_s in ((0, 100.0), (1, 200.0)):
        frames = [ds[i] for i in range(len(ds)) if int(ds.hf_dataset[i]['episode_index']) == episode]
        action = np.stack([f['action'].numpy() for f in frames])
        state = np.stack([f['observation.state'].numpy() for f in frames])
        t = action[:, 0] - LEADER_OFFSET
        np.testing.assert_allclose(action, action[:, :1].repeat(6, 1))  # joint order restored by name
        assert np.all(np.abs(state[:, 0] - t) <= 0.05 + 1e-3)
        assert np.all(np.abs(state[:, 6] - t) <= 0.05 + 1e-3)
        grid = start_s + np.round((t - start_s) * 10) / 10
        assert np.all(np.abs(t - grid) < 1 / RATE / 2 + 1e-3)  # every frame sits on the 10 Hz grid
        ticks = np.round((t - start_s) * RATE).astype(int)
        grey = np.array([round(float(f['observation.images.wrist'].mean()) * 255) for f in frames])
        assert np.all(np.abs(grey - np.array([grey_level(k) for k in ticks])) <= 3)


def test_bag_with_wrong_topic_type_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = BagWriter(tmp_path / 'bad.mcap')
    bag.write('/joint_states', String(data='not a joint state'), 1)
    bag.close()
    assert main([str(tmp_path / 'bad.mcap'), '--root', str(tmp_path / 'ds'), '--task', 'x']) == 2
    assert 'std_msgs/msg/String' in capsys.readouterr().err
    assert not (tmp_path / 'ds').exists()


def test_bag_too_short_for_an_episode_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_bag(tmp_path / 'blip.mcap', start_s=10.0, seconds=0.1, instruction='lift the cube')  # one 10 Hz frame
    root = tmp_path / 'ds'
    assert main([str(tmp_path / 'blip.mcap'), '--params-file', str(write_params(tmp_path, root))]) == 2
    assert 'an episode needs 2' in capsys.readouterr().err


def test_truncated_bag_converts_the_readable_part(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    write_bag(tmp_path / 'full.mcap', start_s=10.0, seconds=3.0, instruction='lift the cube')
    data = (tmp_path / 'full.mcap').read_bytes()
    (tmp_path / 'cut.mcap').write_bytes(data[: len(data) * 6 // 10])  # `ros2 bag record` killed: no summary
    root = tmp_path / 'ds'
    assert main([str(tmp_path / 'cut.mcap'), '--params-file', str(write_params(tmp_path, root))]) == 0
    assert 'unreadable after this point' in capsys.readouterr().err
    ds = LeRobotDataset('local/so101_teleop', root=root, video_backend='pyav')
    assert ds.meta.total_episodes == 1
    assert 10 <= len(ds) < 30  # a prefix of the 30 frames the full bag holds
    t = ds[len(ds) - 1]['action'][0].item() - LEADER_OFFSET
    assert abs(t - (10.0 + (len(ds) - 1) / 10)) < 1 / RATE  # the prefix starts at the bag's start, no gaps
