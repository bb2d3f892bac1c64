"""Recorder building blocks without DDS traffic: aligner decisions, stream extraction, configuration, writer checks."""

from pathlib import Path

import numpy as np
import pytest
import rclpy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from adamoe_ros.joint_state import JointStateMatcher
from adamoe_ros.recorder.aligner import AlignedFrame, DroppedFrame, FrameAligner
from adamoe_ros.recorder.config import RecorderConfig, RecorderConfigError
from adamoe_ros.recorder.dataset_writer import DatasetMismatchError, EpisodeDatasetWriter
from adamoe_ros.recorder.mcap_convert import load_params_file
from adamoe_ros.recorder.node import RecorderNode
from adamoe_ros.recorder.sim_stamps import SimPublicationStamps
from adamoe_ros.recorder.streams import (
    StreamValueError,
    array_values,
    joint_positions,
    sample_stamp_ns,
    trajectory_positions,
)
from adamoe_ros.ros_image import numpy_to_image

MS = 1_000_000
PARAMS = Path(__file__).parents[1] / 'config' / 'record_so101.yaml'


def test_aligner_picks_nearest_sample_per_stream_and_waits_for_data() -> None:
    aligner = FrameAligner(['a', 'b'], fps=10, tolerance_s=0.04, max_latency_s=0.5)
    for t in range(0, 300, 33):  # 'a' at ~30 Hz
        aligner.push('a', t * MS, f'a{t}')
    aligner.push('b', 5 * MS, 'b5')
    aligner.push('b', 98 * MS, 'b98')
    aligner.start(0)
    # b has nothing at/after 100 ms yet: that point waits (the nearest b might still come)
    assert [f.time_ns for f in aligner.poll(90 * MS)] == [0]
    assert aligner.poll(150 * MS) == []
    aligner.push('b', 103 * MS, 'b103')
    # now 100 ms is decided (b98 is nearer than b103); 200 ms waits: only 250 ms old, latency bound 500 ms
    frames = aligner.poll(250 * MS)
    assert [f.time_ns for f in frames] == [100 * MS]
    assert frames[0].values == {'a': 'a99', 'b': 'b98'}
    assert frames[0].stamps_ns == {'a': 99 * MS, 'b': 98 * MS}
    # once the latency bound passes, 200 ms is decided without b: b's nearest (98 ms) is out of tolerance
    late = aligner.poll(700 * MS)
    assert isinstance(late[0], DroppedFrame) and late[0].time_ns == 200 * MS and 'b is' in late[0].reason
    assert aligner.next_time_ns == 300 * MS  # 300 ms is not decided: 'a' has no sample after it yet


def test_aligner_counts_missing_streams_and_ignores_stamps_going_back() -> None:
    aligner = FrameAligner(['a', 'b'], fps=10, tolerance_s=0.05, max_latency_s=0.0)
    aligner.push('a', 0, 1)
    aligner.push('a', -MS, 2)  # older than the newest: ignored
    aligner.start(0)
    result = aligner.poll(0, flush=True)
    assert isinstance(result[0], DroppedFrame) and result[0].reason == 'no b received'
    assert aligner.out_of_order_count() == 1
    aligner.push('b', 100 * MS, 3)
    aligner.push('a', 100 * MS, 4)
    [frame] = aligner.poll(100 * MS)
    assert isinstance(frame, AlignedFrame) and frame.values == {'a': 4, 'b': 3} and frame.index == 1
    aligner.stop()
    assert aligner.poll(10_000 * MS) == []


def test_aligner_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        FrameAligner([], fps=10, tolerance_s=0.05, max_latency_s=0.1)
    with pytest.raises(ValueError):
        FrameAligner(['a', 'a'], fps=10, tolerance_s=0.05, max_latency_s=0.1)
    with pytest.raises(ValueError):
        FrameAligner(['a'], fps=0, tolerance_s=0.05, max_latency_s=0.1)


def test_sim_stamps_give_each_sample_the_sim_time_of_its_publication() -> None:
    stamps = SimPublicationStamps(history_ns=2_000 * MS)
    assert stamps.add_sample(5 * MS, 'early') == []  # no /clock yet: it waits
    assert stamps.add_clock(10 * MS, 1_000 * MS) == [(0, 'early')]  # published before any /clock: no sim time
    assert stamps.add_sample(12 * MS, 'a') == []  # a /clock published before it may still be on its way
    assert stamps.add_clock(20 * MS, 1_033 * MS) == [(1_000 * MS, 'a')]
    assert stamps.add_clock(30 * MS, 1_066 * MS) == []
    # Queued behind later clocks (a loaded executor), and whatever the speed of sim time: its publication's sim time.
    assert stamps.add_sample(25 * MS, 'queued') == [(1_033 * MS, 'queued')]
    assert stamps.add_sample(20 * MS, 'with its clock') == [(1_033 * MS, 'with its clock')]
    # A stopped /clock (paused sim): only the newest 2 s of samples wait, then get the paused sim time.
    for k in range(5):
        assert stamps.add_sample((40 + 1_000 * k) * MS, k) == []
    assert stamps.add_clock(10_000 * MS, 2_000 * MS) == [(1_066 * MS, 3), (1_066 * MS, 4)]
    assert stamps.add_sample(29 * MS, 'older than the history') == [(0, 'older than the history')]


def test_stream_extraction_orders_by_name_and_refuses_bad_messages() -> None:
    joints = ['j1', 'j2']
    matcher = JointStateMatcher(joints, allow_extra_joints=True)
    state = JointState(name=['j2', 'extra', 'j1'], position=[2.0, 9.0, 1.0])
    np.testing.assert_array_equal(joint_positions(state, matcher, 'js'), [1.0, 2.0])
    with pytest.raises(StreamValueError, match=r"lacks joints \['j2'\]"):
        joint_positions(JointState(name=['j1'], position=[1.0]), matcher, 'js')
    with pytest.raises(StreamValueError, match='non-finite'):
        joint_positions(JointState(name=['j1', 'j2'], position=[1.0, float('nan')]), matcher, 'js')
    with pytest.raises(StreamValueError, match='names but'):
        joint_positions(JointState(name=['j1', 'j2'], position=[1.0]), matcher, 'js')
    traj = JointTrajectory(joint_names=['j2', 'j1'], points=[JointTrajectoryPoint(positions=[5.0, 4.0])])
    np.testing.assert_array_equal(trajectory_positions(traj, joints, 'cmd'), [4.0, 5.0])
    with pytest.raises(StreamValueError, match='no points'):
        trajectory_positions(JointTrajectory(joint_names=joints), joints, 'cmd')
    with pytest.raises(StreamValueError, match='expected 3'):
        array_values(Float64MultiArray(data=[1.0, 2.0]), 3, 'cube')
    with pytest.raises(StreamValueError, match='non-finite'):
        array_values(Float64MultiArray(data=[1.0, float('inf')]), 2, 'cube')
    stamped = JointState()
    assert sample_stamp_ns(stamped, True, 77) == 77  # zero header stamp: receive time
    stamped.header.stamp.sec, stamped.header.stamp.nanosec = 3, 5
    assert sample_stamp_ns(stamped, True, 77) == 3_000_000_005


def test_config_validation_names_the_parameter() -> None:
    with pytest.raises(RecorderConfigError, match='tolerance_s'):
        RecorderConfig.from_values({'tolerance_s': 0.2})  # more than a frame period at 10 fps
    with pytest.raises(RecorderConfigError, match='same length'):
        RecorderConfig.from_values({'camera_names': ['a', 'b'], 'camera_topics': ['x']})
    with pytest.raises(RecorderConfigError, match='action_type'):
        RecorderConfig.from_values({'action_type': 'twist'})
    with pytest.raises(RecorderConfigError, match='unknown'):
        RecorderConfig.from_values({'fsp': 10})
    with pytest.raises(RecorderConfigError, match='clash'):
        RecorderConfig.from_values({'extra_state_names': ['gripper']})
    assert RecorderConfig.from_values({}) == RecorderConfig()


def test_params_file_matches_defaults_in_node_and_converter(tmp_path: Path) -> None:
    assert RecorderConfig.from_values(load_params_file(PARAMS)) == RecorderConfig()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = RecorderNode(
            context=context,
            cli_args=[
                '--ros-args',
                '--params-file',
                str(PARAMS),
                '-p',
                f'dataset_root:={tmp_path / "ds"}',
                '-p',
                'fps:=5',
            ],
        )
        try:
            assert node.config == RecorderConfig(dataset_root=str(tmp_path / 'ds'), fps=5)
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_writer_creates_a_nested_root_whose_parents_do_not_exist(tmp_path: Path) -> None:
    root = tmp_path / 'study' / 'chunk_00' / 'data'  # a fresh folder tree, as a data-collection script names it
    front = {'camera_names': ['front'], 'camera_topics': ['cameras/front/image_raw'], 'camera_types': ['image']}
    writer = EpisodeDatasetWriter(RecorderConfig(dataset_root=str(root), extra_state_topic='', **front))
    image = numpy_to_image(np.zeros((32, 40, 3), np.uint8), 'rgb8')
    values = {'camera:front': image, 'joint_states': np.zeros(6, np.float32), 'action': np.ones(6, np.float32)}
    for _ in range(2):
        writer.add(AlignedFrame(0, 0, values, {}), 'task')
    assert writer.save_episode().num_frames == 2
    writer.close()
    assert (root / 'meta' / 'info.json').is_file()


def test_writer_refuses_a_dataset_with_other_features(tmp_path: Path) -> None:
    root = tmp_path / 'ds'
    front = {'camera_names': ['front'], 'camera_topics': ['cameras/front/image_raw'], 'camera_types': ['image']}
    config = RecorderConfig(dataset_root=str(root), extra_state_topic='', **front)
    writer = EpisodeDatasetWriter(config)
    values = {
        'camera:front': numpy_to_image(np.zeros((8, 8, 3), np.uint8), 'rgb8'),
        'joint_states': np.zeros(6, np.float32),
        'action': np.ones(6, np.float32),
    }
    with pytest.raises(ValueError, match='below 32 px'):  # the encoder would abort the process
        writer.add(AlignedFrame(0, 0, values, {}), 'task')
    values['camera:front'] = numpy_to_image(np.zeros((32, 40, 3), np.uint8), 'rgb8')
    frame = AlignedFrame(0, 0, values, {})
    with pytest.raises(ValueError, match='no frames'):
        writer.save_episode()
    writer.add(frame, 'task')
    writer.add(frame, 'task')
    assert writer.save_episode().num_frames == 2
    writer.close()
    with pytest.raises(DatasetMismatchError, match='observation.state names'):
        EpisodeDatasetWriter(RecorderConfig(dataset_root=str(root), **front))  # + cube state
    with pytest.raises(DatasetMismatchError, match='fps'):
        EpisodeDatasetWriter(
            RecorderConfig(dataset_root=str(root), extra_state_topic='', fps=30, tolerance_s=0.01, **front)
        )
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'notes.txt').write_text('x')
    with pytest.raises(DatasetMismatchError, match='not a LeRobot dataset'):
        EpisodeDatasetWriter(RecorderConfig(dataset_root=str(tmp_path / 'other')))
    reopened = EpisodeDatasetWriter(config)
    assert reopened.saved_episodes == 1
    reopened.close()
    # A kill during a save leaves a footerless parquet file and info.json counting the episode: refuse clearly.
    footerless = root / 'data' / 'chunk-000' / 'file-001.parquet'
    footerless.write_bytes(b'PAR1' + bytes(100))
    with pytest.raises(DatasetMismatchError, match='file-001.parquet is unreadable'):
        EpisodeDatasetWriter(config)
    footerless.unlink()
    info_path = root / 'meta' / 'info.json'
    info_path.write_text(info_path.read_text().replace('"total_episodes": 1', '"total_episodes": 2'))
    with pytest.raises(DatasetMismatchError, match='counts 2 episodes, meta/episodes holds 1'):
        EpisodeDatasetWriter(config)


def test_writer_refuses_a_one_frame_episode_which_would_break_the_next_save(tmp_path: Path) -> None:
    """LeRobot's streaming encoder leaves a one-frame episode without image statistics; the next save then fails
    to read meta/episodes back. The writer refuses that episode, and refuses a dataset that already holds one."""
    front = {'camera_names': ['front'], 'camera_topics': ['cameras/front/image_raw'], 'camera_types': ['image']}
    config = RecorderConfig(dataset_root=str(tmp_path / 'ds'), extra_state_topic='', **front)
    rng = np.random.default_rng(0)

    def frame() -> AlignedFrame:
        image = numpy_to_image(rng.integers(0, 256, (32, 40, 3), np.uint8), 'rgb8')
        values = {'camera:front': image, 'joint_states': np.zeros(6, np.float32), 'action': np.ones(6, np.float32)}
        return AlignedFrame(0, 0, values, {})

    writer = EpisodeDatasetWriter(config)
    writer.add(frame(), 'task')
    with pytest.raises(ValueError, match='1 frame, fewer than the 2'):
        writer.save_episode()
    assert writer.discard_episode() == 1
    for length in (2, 5):
        for _ in range(length):
            writer.add(frame(), 'task')
        assert writer.save_episode().num_frames == length
    # What an unchecked save did: a one-frame episode straight through LeRobot, then a reopen finds it.
    writer.add(frame(), 'task')
    writer._dataset.save_episode()
    writer._dataset.finalize()
    with pytest.raises(DatasetMismatchError, match=r'file-002.parquet has no image statistics'):
        EpisodeDatasetWriter(config)
