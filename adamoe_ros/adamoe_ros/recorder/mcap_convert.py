"""mcap_to_lerobot: convert rosbag2 MCAP recordings into a LeRobot v3 dataset, one episode per bag.

The topic mapping, the stamp alignment and the dataset writer are the recorder node's own, so `ros2 bag record`
followed by this converter gives the same dataset as recording live. Message stamps come from the headers; messages
without one (Float64MultiArray) use the bag's log time, like the node uses its receive time.
"""

import argparse
import struct
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import rclpy
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rclpy.node import Node
from rclpy.serialization import deserialize_message

from adamoe_ros.parameters import declare_parameters, given_values, read_parameters
from adamoe_ros.recorder.aligner import AlignedFrame, DroppedFrame, FrameAligner
from adamoe_ros.recorder.config import RecorderConfig, RecorderConfigError
from adamoe_ros.recorder.dataset_writer import (
    MIN_EPISODE_FRAMES,
    DatasetMismatchError,
    EpisodeDatasetWriter,
    SavedEpisode,
)
from adamoe_ros.recorder.streams import StreamSource, StreamValueError, sample_stamp_ns, stream_sources


class BagConversionError(ValueError):
    """A bag cannot be converted (unreadable, topics missing or of the wrong type, no task)."""


@dataclass(frozen=True)
class BagEpisode:
    """What one bag turned into."""

    bag: Path
    saved: SavedEpisode
    dropped_frames: int
    bad_messages: int
    task: str
    truncated: list[str]


def mcap_files(bag: Path) -> list[Path]:
    """List the .mcap files of a bag: the file itself, or the sorted .mcap files of a rosbag2 folder."""
    if bag.is_file():
        return [bag]
    files = sorted(bag.glob('*.mcap'))
    if not files:
        raise BagConversionError(f'{bag}: no .mcap file (expected a file or a rosbag2 folder)')
    return files


def _type_name(msg_type: type) -> str:
    package = msg_type.__module__.split('.')[0]
    return f'{package}/msg/{msg_type.__name__}'


def _records(path: Path, truncated: list[str]) -> Iterator[object]:
    """Yield the records of an MCAP file in file order; a truncated tail (killed `ros2 bag`) ends the file."""
    with open(path, 'rb') as stream:
        records = StreamReader(stream).records  # sequential: needs no summary section, unlike make_reader
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except (McapError, struct.error) as error:
                truncated.append(
                    f'{path}: unreadable after this point ({error or type(error).__name__}); '
                    'converted the messages before it'
                )
                return
            yield record


def _messages(
    files: list[Path], sources: dict[str, StreamSource], truncated: list[str]
) -> Iterator[tuple[StreamSource, object, int]]:
    """Yield (source, deserialized message, log time ns) of the mapped topics, in file order."""
    for path in files:
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        for record in _records(path, truncated):
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, Message):
                channel = channels.get(record.channel_id)
                if channel is None or channel.topic not in sources:
                    continue
                source = sources[channel.topic]
                expected = _type_name(source.msg_type)
                schema = schemas.get(channel.schema_id)
                if schema is not None and schema.name and schema.name != expected:
                    raise BagConversionError(
                        f'{path}: topic {channel.topic} has type {schema.name}, the mapping expects {expected}'
                    )
                yield source, deserialize_message(record.data, source.msg_type), record.log_time


def _topic_map(config: RecorderConfig, namespace: str) -> dict[str, StreamSource]:
    prefix = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return {
        f'{prefix}/{source.topic.lstrip("/")}' if not source.topic.startswith('/') else source.topic: source
        for source in stream_sources(config)
    }


def convert_bag(bag: Path, writer: EpisodeDatasetWriter, namespace: str = '', task: str = '') -> BagEpisode:
    """Convert one bag into one saved episode of `writer`'s dataset."""
    config = writer.config
    sources = _topic_map(config, namespace)
    aligner = FrameAligner(
        config.stream_names,
        config.fps,
        config.tolerance_s,
        config.max_latency_s,
        history_s=max(2.0, 4 * config.max_latency_s),
    )
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    instruction = ''
    frames: list[AlignedFrame] = []
    dropped = bad = 0
    truncated: list[str] = []

    def take(results: list[AlignedFrame | DroppedFrame]) -> None:
        nonlocal dropped
        for result in results:
            if isinstance(result, DroppedFrame):
                dropped += 1
            else:
                frames.append(result)

    for source, msg, log_time in _messages(mcap_files(bag), sources, truncated):
        if source.stream == 'instruction':
            instruction = instruction or msg.data.strip()  # the episode's task is the first instruction
            continue
        try:
            value = source.extract(msg)
        except StreamValueError:
            bad += 1
            continue
        stamp = sample_stamp_ns(msg, source.has_header, log_time)
        aligner.push(source.stream, stamp, value)
        first.setdefault(source.stream, stamp)
        last[source.stream] = stamp
        if not aligner.started and len(first) == len(config.stream_names):
            aligner.start(max(first.values()))  # the first instant at which every stream exists
        if aligner.started:
            take(aligner.poll(log_time))
    missing = sorted(set(config.stream_names) - set(first))
    if missing:
        topics = [s.topic for s in sources.values() if s.stream in missing]
        raise BagConversionError(f'{bag}: no usable messages for {missing} (topics {topics})')
    take(aligner.poll(min(last.values()), flush=True))
    task = task or instruction or config.default_task
    if not task:
        raise BagConversionError(f'{bag}: no instruction in the bag; pass --task')
    if len(frames) < MIN_EPISODE_FRAMES:
        raise BagConversionError(
            f'{bag}: {len(frames)} frames had all streams within {config.tolerance_s} s; '
            f'an episode needs {MIN_EPISODE_FRAMES}'
        )
    try:
        for frame in frames:
            writer.add(frame, task)
        saved = writer.save_episode()
    except BaseException:
        writer.discard_episode()
        raise
    return BagEpisode(bag, saved, dropped, bad, task, truncated)


def load_params_file(path: Path, namespace: str = '', node_name: str = 'recorder') -> dict[str, Any]:
    """Read the recorder's parameters from a ROS params file, as the recorder node in `namespace` would get them.

    rcl itself parses the file for a node of that name and namespace (every key form: /**, /**/recorder,
    /ns/recorder, recorder), so a file that configures the node configures the converter the same way. The node
    is never spun; it only holds the parameters.
    """
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        try:
            node = Node(
                node_name,
                namespace=namespace,
                context=context,
                start_parameter_services=False,
                enable_rosout=False,
                cli_args=['--ros-args', '--params-file', str(path)],
            )
        except RuntimeError as error:  # rcl's RCLInvalidROSArgsError: missing or malformed file
            raise RecorderConfigError(f'{path}: not a usable ROS params file ({error})') from None
        try:
            if not given_values(node):
                raise RecorderConfigError(f'{path}: no parameters for node {node.get_fully_qualified_name()}')
            declare_parameters(node, RecorderConfig)
            return asdict(read_parameters(node, RecorderConfig))
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of mcap_to_lerobot."""
    parser = argparse.ArgumentParser(prog='mcap_to_lerobot', description=__doc__.splitlines()[0])
    parser.add_argument('bags', nargs='+', type=Path, help='MCAP files or rosbag2 folders, one episode each')
    parser.add_argument('--params-file', type=Path, help="the recorder's ROS params YAML (topic mapping)")
    parser.add_argument('--root', help='dataset folder (overrides dataset_root)')
    parser.add_argument('--repo-id', help='LeRobot repo id (overrides repo_id)')
    parser.add_argument('--fps', type=int, help='dataset fps (overrides fps)')
    parser.add_argument('--task', default='', help='task for every episode (default: the instruction in the bag)')
    parser.add_argument('--namespace', default='', help='namespace the topics were recorded under')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Convert the bags; exit 0 when all were converted, 2 on a configuration or bag error."""
    args = build_parser().parse_args(argv)
    writer = None
    try:
        params = load_params_file(args.params_file, args.namespace) if args.params_file else {}
        overrides = {'dataset_root': args.root, 'repo_id': args.repo_id, 'fps': args.fps}
        params.update({k: v for k, v in overrides.items() if v is not None})
        writer = EpisodeDatasetWriter(RecorderConfig.from_values(params))
        for bag in args.bags:
            episode = convert_bag(bag, writer, args.namespace, args.task)
            for note in episode.truncated:
                print(f'warning: {note}', file=sys.stderr)
            print(
                f'{bag}: episode {episode.saved.episode_index}, {episode.saved.num_frames} frames, '
                f'{episode.dropped_frames} dropped, {episode.bad_messages} bad messages, task {episode.task!r}',
                flush=True,
            )
        print(f'dataset {writer.config.repo_id} at {writer.root}: {writer.saved_episodes} episodes')
    except (RecorderConfigError, DatasetMismatchError, BagConversionError, OSError) as error:
        print(f'mcap_to_lerobot: {error}', file=sys.stderr)
        return 2
    finally:
        if writer is not None:
            writer.close()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
