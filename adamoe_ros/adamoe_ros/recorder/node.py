"""Teleop recorder node: aligned camera/state/action frames into a LeRobot v3 dataset, one durable episode per save.

Services (std_srvs/Trigger): recorder/start, recorder/save (stop and save; returns once the episode is on disk),
recorder/discard. Status: recorder/status (adamoe_ros_interfaces/RecorderStatus). Spin it on a SingleThreadedExecutor,
as `ros2 run` and `adamoe_run` do (node_main.py says why not rclpy's MultiThreadedExecutor).
"""

import threading
import time
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import MessageInfo
from rosgraph_msgs.msg import Clock
from std_srvs.srv import Trigger

from adamoe_ros.node_main import run_node
from adamoe_ros.parameters import declare_parameters, read_parameters
from adamoe_ros.recorder.aligner import AlignedFrame, DroppedFrame, FrameAligner
from adamoe_ros.recorder.config import RecorderConfig, RecorderConfigError
from adamoe_ros.recorder.dataset_writer import DatasetMismatchError, EpisodeDatasetWriter
from adamoe_ros.recorder.io_worker import DatasetIoWorker, await_on_executor
from adamoe_ros.recorder.save_answer import saved_answer
from adamoe_ros.recorder.sim_stamps import SimPublicationStamps
from adamoe_ros.recorder.streams import StreamSource, StreamValueError, header_stamp_ns, stream_sources
from adamoe_ros.ros_env import BUFFERED_SENSOR_QOS, LATCHED_QOS, RELIABLE_QOS, stamp_to_ns
from adamoe_ros_interfaces.msg import RecorderStatus

# Beyond this the publisher's clock is not trusted (another host with an unsynchronised clock).
MAX_QUEUE_DELAY_NS = 2_000_000_000
# One deeper than the streams' queue: behind a backlog, a stream's message is dropped before the /clock published just
# before it (when /clock comes no more often than the stream: this project's sim), so a kept sample keeps its /clock.
CLOCK_QOS = QoSProfile(
    history=BUFFERED_SENSOR_QOS.history,
    depth=BUFFERED_SENSOR_QOS.depth + 1,
    reliability=BUFFERED_SENSOR_QOS.reliability,
    durability=BUFFERED_SENSOR_QOS.durability,
)


class RecorderNode(Node):
    """Records teleoperated episodes into a LeRobot dataset (see module docstring for the interface)."""

    def __init__(self, node_name: str = 'recorder', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._lock = threading.Lock()  # aligner and counters: subscriptions, timer and services may run in parallel
        self._closed = True  # until the writer exists: destroy_node may run on a node whose construction failed
        declare_parameters(self, RecorderConfig)
        self.config = read_parameters(self, RecorderConfig)
        self._aligner = FrameAligner(
            self.config.stream_names, self.config.fps, self.config.tolerance_s, self.config.max_latency_s
        )
        self._io = DatasetIoWorker()
        try:
            self._writer: EpisodeDatasetWriter = self._io.call(
                EpisodeDatasetWriter, self.config, self.config.parallel_encoding
            )
        except BaseException:
            self._io.shutdown()
            raise
        self._closed = False
        self._instruction = ''
        self._task = ''
        self._recording = False
        self._busy = False  # a save or discard is in progress
        self._frames = 0
        self._dropped = 0
        self._queued_writes = 0  # frames handed to the writer thread and not written yet
        self._received: dict[str, int] = {}  # camera messages received during the episode, per camera
        self._bad_messages = 0
        self._message = ''
        self._saved_episodes = self._writer.saved_episodes

        # Under sim time a headerless message gets the sim time of its publication, from /clock (sim_stamps.py).
        self._sim_stamps: SimPublicationStamps | None = None
        if self.get_parameter('use_sim_time').value:
            self._sim_stamps = SimPublicationStamps(MAX_QUEUE_DELAY_NS)
            self.create_subscription(Clock, '/clock', self._on_clock, CLOCK_QOS)
        for source in stream_sources(self.config):
            qos = LATCHED_QOS if source.stream == 'instruction' else BUFFERED_SENSOR_QOS
            self.create_subscription(source.msg_type, source.topic, self._make_callback(source), qos)
        self._status_pub = self.create_publisher(RecorderStatus, 'recorder/status', RELIABLE_QOS)
        # Own group: an awaiting save must not hold the default group, or subscriptions would stall meanwhile.
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, 'recorder/start', self._on_start, callback_group=services)
        self.create_service(Trigger, 'recorder/save', self._on_save, callback_group=services)
        self.create_service(Trigger, 'recorder/discard', self._on_discard, callback_group=services)
        # Poll twice per frame period: the aligner decides each grid point once its data has arrived.
        self.create_timer(0.5 / self.config.fps, self._on_sample_timer)
        self.create_timer(1.0 / self.config.status_rate_hz, self.publish_status)
        self._progress_timer = self.create_timer(2.0, self._log_progress)
        self.get_logger().info(
            f'recording {self.config.fps} fps into {self._writer.root} ({self._saved_episodes} episodes there); '
            f'cameras {[c.name for c in self.config.cameras]}, action from {self.config.action_topic} '
            f'({self.config.action_type})'
        )

    # ---- streams -------------------------------------------------------------------------------------------
    def _make_callback(self, source: StreamSource):  # noqa: ANN202 (closure type is noise)
        def on_message(msg: Any, info: MessageInfo) -> None:
            if source.stream == 'instruction':
                self._on_instruction(msg.data)
                return
            try:
                value = source.extract(msg)
            except StreamValueError as error:
                with self._lock:
                    self._bad_messages += 1
                    self._message = str(error)
                self.get_logger().warning(f'ignoring message: {error}', throttle_duration_sec=2.0)
                return
            stamp = header_stamp_ns(msg, source.has_header)
            with self._lock:
                if stamp:
                    self._aligner.push(source.stream, stamp, value)
                else:
                    self._push_headerless(source.stream, value, info)
                if self._recording and source.stream in self._received:
                    self._received[source.stream] += 1

        return on_message

    def _push_headerless(self, stream: str, value: Any, info: MessageInfo | None) -> None:
        """Push a sample stamped with its publication time on the node clock (call with the lock held).

        Receive time alone would lag by however long the message queued behind other callbacks (hundreds of ms on a
        loaded machine), so the stamp comes from the DDS source timestamp, which is on the publisher's system clock:
        used as is when the node clock is the system clock, turned into sim time through /clock under sim time.
        """
        source_ns = info.get('source_timestamp', 0) if info else 0
        if source_ns <= 0:  # a middleware without source timestamps: receive time is all there is
            self._aligner.push(stream, self.get_clock().now().nanoseconds, value)
        elif self._sim_stamps is None:
            now = self.get_clock().now().nanoseconds
            self._aligner.push(stream, now - min(max(0, time.time_ns() - source_ns), MAX_QUEUE_DELAY_NS), value)
        else:
            for stamp, (name, sample) in self._sim_stamps.add_sample(source_ns, (stream, value)):
                self._aligner.push(name, stamp, sample)

    def _on_clock(self, msg: Clock, info: MessageInfo) -> None:
        source_ns = info.get('source_timestamp', 0) if info else 0
        if source_ns <= 0:
            return
        with self._lock:
            for stamp, (stream, value) in self._sim_stamps.add_clock(source_ns, stamp_to_ns(msg.clock)):
                self._aligner.push(stream, stamp, value)

    def _on_instruction(self, text: str) -> None:
        with self._lock:
            self._instruction = text.strip()
            recording = self._recording
        if recording and text.strip() != self._task:
            self.get_logger().info('instruction changed during an episode: it applies from the next episode')

    def _on_sample_timer(self) -> None:
        now = self.get_clock().now().nanoseconds
        with self._lock:
            if self._recording:
                self._handle(self._aligner.poll(now))

    def _handle(self, results: list[AlignedFrame | DroppedFrame]) -> None:
        """Queue accepted frames for the writer, count rejected ones (call with the lock held)."""
        for result in results:
            if isinstance(result, DroppedFrame):
                self._dropped += 1
                self._message = f'frame {result.index} dropped: {result.reason}'
                self.get_logger().warning(self._message, throttle_duration_sec=2.0)
                continue
            if self._queued_writes >= self.config.write_queue_frames:
                # The writer fell behind: memory stays bounded and the loss is counted, never silent.
                self._dropped += 1
                self._message = (
                    f'frame {result.index} dropped: the writer is {self._queued_writes} frames behind '
                    '(write_queue_frames)'
                )
                self.get_logger().warning(self._message, throttle_duration_sec=2.0)
                continue
            self._frames += 1
            self._queued_writes += 1
            self._io.submit(self._write_frame, result, self._task)

    def _write_frame(self, frame: AlignedFrame, task: str) -> None:
        """Write one queued frame on the IO thread, then settle its count; a failed write is a counted drop.

        The counting runs here rather than in a future's done-callback: a callback added to a future that has already
        finished runs at once in the adding thread, which holds the lock, and deadlocked the recorder.
        """
        try:
            self._writer.add(frame, task)
            error = None
        except Exception as exc:  # noqa: BLE001 (disk full, encoder behind, a bad frame: each is reported alike)
            error = exc
        with self._lock:
            self._queued_writes -= 1
            if error is not None:
                self._frames -= 1
                self._dropped += 1
                self._message = f'frame not written: {error}'
        if error is not None:
            self.get_logger().error(self._message, throttle_duration_sec=2.0)

    # ---- services ------------------------------------------------------------------------------------------
    def _on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        now = self.get_clock().now().nanoseconds
        with self._lock:
            task = self._instruction or self.config.default_task
            if self._recording or self._busy:
                response.message = 'already recording' if self._recording else 'a save is still in progress'
            elif not task:
                response.message = (
                    f'no instruction received on {self.config.instruction_topic} and default_task '
                    'is empty: the episode would have no task'
                )
            elif now <= 0:
                response.message = 'the clock is at 0 (use_sim_time without /clock?)'
            else:
                self._task = task
                self._frames = self._dropped = 0
                self._received = {f'camera:{camera.name}': 0 for camera in self.config.cameras}
                self._message = ''
                self._aligner.start(now)
                self._recording = True
                response.success = True
                response.message = f'recording episode {self._saved_episodes}: {task!r}'
        # rclpy ties one severity to each logging call site: two sites, not one conditional call.
        if response.success:
            self.get_logger().info(response.message)
        else:
            self.get_logger().warning(response.message)
        self.publish_status()
        return response

    def _stop_recording(self) -> bool:
        """Flush the grid up to now and stop; False when not recording."""
        now = self.get_clock().now().nanoseconds
        with self._lock:
            if not self._recording:
                return False
            self._handle(self._aligner.poll(now, flush=True))
            self._aligner.stop()
            self._recording = False
            self._busy = True
            return True

    async def _on_save(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._stop_recording():
            response.message = 'not recording'
            return response
        try:
            saved = await await_on_executor(self, self._io.submit(self._writer.save_episode))
        except ValueError as error:  # empty episode: nothing to save, nothing kept
            await await_on_executor(self, self._io.submit(self._writer.discard_episode))
            response.message = f'episode not saved: {error}'
        except Exception as error:  # noqa: BLE001 (report any writer failure to the caller)
            await await_on_executor(self, self._io.submit(self._writer.discard_episode))
            response.message = f'saving failed, episode discarded: {error}'
            self.get_logger().error(response.message)
        else:
            # Frame writes run before the save on the FIFO worker, so a frame that failed to write is counted now.
            with self._lock:
                dropped = self._dropped
                received = {name.removeprefix('camera:'): n for name, n in self._received.items()}
            response.success = True
            response.message = saved_answer(saved.episode_index, saved.num_frames, dropped, saved.seconds, received)
            self.get_logger().info(response.message)
        with self._lock:
            self._busy = False
            self._saved_episodes = self._writer.saved_episodes
            self._frames = self._dropped = 0
        self.publish_status()
        return response

    async def _on_discard(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._stop_recording():
            response.message = 'not recording'
            return response
        dropped = await await_on_executor(self, self._io.submit(self._writer.discard_episode))
        with self._lock:
            self._busy = False
            self._frames = self._dropped = 0
        response.success = True
        response.message = f'discarded episode {self._saved_episodes} ({dropped} frames)'
        self.get_logger().info(response.message)
        self.publish_status()
        return response

    # ---- status --------------------------------------------------------------------------------------------
    def publish_status(self) -> None:
        """Publish recorder/status now."""
        msg = RecorderStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        with self._lock:
            msg.recording = self._recording
            msg.episode_index = self._saved_episodes
            msg.frame_count = self._frames
            msg.dropped_frames = self._dropped
            msg.saved_episodes = self._saved_episodes
            msg.task = self._task if self._recording else (self._instruction or self.config.default_task)
            msg.message = self._message
        msg.dataset_root = str(self._writer.root)
        msg.fps = float(self.config.fps)
        self._status_pub.publish(msg)

    def _log_progress(self) -> None:
        with self._lock:
            if not self._recording:
                return
            text = f'episode {self._saved_episodes}: {self._frames} frames, {self._dropped} dropped'
        self.get_logger().info(text)

    def destroy_node(self) -> None:
        """Discard an unsaved episode, close the dataset files, then destroy the node."""
        with self._lock:
            closing, self._closed = not self._closed, True
            if closing:
                self._recording = False
                self._aligner.stop()
        if closing:
            self._io.call(self._writer.close)
            self._io.shutdown()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run adamoe_ros recorder_node`; SIGINT/SIGTERM discard an unsaved episode and exit 0."""
    return run_node(RecorderNode, args, startup_errors=(RecorderConfigError, DatasetMismatchError))


if __name__ == '__main__':
    raise SystemExit(main())
