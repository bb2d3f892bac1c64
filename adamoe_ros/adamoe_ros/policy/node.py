"""policy_node: a managed node turning camera images, joint states and an instruction into safe joint commands.

configure loads the bundle and subscribes; activate starts inference and commands; deactivate holds the
measured position; cleanup and shutdown release everything. Inference runs in its own thread, the
per-step command stream on a timer, so chunks are computed while the robot keeps moving.

Inference runs in the inference thread itself or, with engine_host 'process', in a child process that thread
waits on; a child that dies is an error that stops commanding at the measured position (reconfigure to restart).
Inputs are admitted by the stamp rules of inputs.py, and commands go out only while every input is fresh.
When commanding stops (an input went stale, the node clock jumped back), the queued actions are dropped
together with any chunk still being planned from them; commanding restarts from a chunk planned afterwards,
ramping from a fresh measurement taken since the last command.
"""

import threading
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import JumpHandle, JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from adamoe_ros.bundles import resolve_bundle_path
from adamoe_ros.engine import BundleSpec, EngineProcess, EngineProcessError, PolicyBackend, PolicyEngine
from adamoe_ros.joint_state import JointStateError, JointStateMatcher
from adamoe_ros.node_main import run_node
from adamoe_ros.parameters import ParameterError
from adamoe_ros.policy.chunk_queue import ActionQueue
from adamoe_ros.policy.commander import Commander
from adamoe_ros.policy.inputs import (
    EXTRA_STATE_STREAM,
    INSTRUCTION_STREAM,
    JOINT_STATE_STREAM,
    ObservationBuffer,
    StreamLimits,
    camera_stream,
)
from adamoe_ros.policy.messages import (
    array_command,
    chunk_message,
    diagnostics_message,
    joint_command,
    trajectory_message,
    usage_message,
)
from adamoe_ros.policy.params import (
    PolicyParams,
    check_against_bundle,
    declare_policy_parameters,
    read_policy_parameters,
)
from adamoe_ros.policy.planner import ChunkPlanner
from adamoe_ros.policy.reporting import RejectionReporter
from adamoe_ros.policy.safety import SafetyFilter, UnsafeCommandError
from adamoe_ros.policy.timing import NodeTimings
from adamoe_ros.policy.validation import (
    InputRejectedError,
    check_camera_image,
    check_extra_state,
    check_instruction,
)
from adamoe_ros.policy.worker import InferenceWorker
from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, RELIABLE_QOS, SENSOR_QOS, stamp_to_ns
from adamoe_ros_interfaces.msg import ActionChunk, ExpertUsage, PolicyStatus

# Any backward step of the node clock (a sim reset or restart) or a switch of its source starts a new time line.
CLOCK_JUMP = JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1), on_clock_change=True)


class PolicyNode(LifecycleNode):
    """Lifecycle node running an AdaMoE policy bundle with ONNX Runtime behind a safety filter."""

    def __init__(self, node_name: str = 'policy_node', **kwargs) -> None:
        """Declare parameters; kwargs (namespace, context, parameter_overrides, cli_args) go to the node."""
        super().__init__(node_name, **kwargs)
        # Before anything that can fail: destroy_node runs on a half-built node too.
        self._active = False
        self._engine: PolicyBackend | None = None
        declare_policy_parameters(self)
        self._state_label = 'unconfigured'
        # Guards the command state shared by the control timer, the inference thread and the clock-jump callback.
        self._lock = threading.Lock()
        # Made by configure from the parameters and the bundle; released by cleanup.
        self._params: PolicyParams | None = None
        self._cameras: list[str] = []
        self._camera_topics: list[str] = []
        self._camera_transports: list[str] = []
        self._extra_state_topic = ''
        self._joint_names: list[str] = []
        self._extra_names: list[str] = []
        self._dt_ns = 0
        self._horizon = 0
        self._queue: ActionQueue | None = None
        self._buffer: ObservationBuffer | None = None
        self._matcher: JointStateMatcher | None = None
        self._rejections = RejectionReporter(self._warn, 2.0)
        self._subscriptions_made: list[Subscription] = []
        self._timers_made: list[Timer] = []
        self._chunk_pub: LifecyclePublisher | None = None
        self._usage_pub: LifecyclePublisher | None = None
        self._trajectory_pub: LifecyclePublisher | None = None
        self._command_pub: LifecyclePublisher | None = None
        self._joint_command_pub: LifecyclePublisher | None = None
        self._status_pub: Publisher | None = None
        self._diagnostics_pub: Publisher | None = None
        self._clock_jump: JumpHandle | None = None
        # Inference and commanding.
        self._worker: InferenceWorker | None = None
        self._frame_event = threading.Event()  # set by each frame of the first camera
        self._frame_arrival_perf_ns = 0
        self._planner: ChunkPlanner | None = None
        self._commander: Commander | None = None  # kept after cleanup so the status still counts stale events
        self._stale_inputs: list[str] = []
        self._chunks_published = 0
        self._problem = ''
        self.timings = NodeTimings()  # read by benchmarks/bench_policy_node.py

    # ---- lifecycle -----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read parameters, load and check the bundle, create subscriptions and publishers."""
        self._problem = ''
        try:
            self._params = read_policy_parameters(self)
            self._engine = _load_engine(self._params, self._on_engine_exit)
            self._setup_from_spec(self._params, self._engine.spec)
        except Exception as err:  # noqa: BLE001 - any configure problem must leave us unconfigured
            self._release()
            self._problem = f'configure failed: {err}'
            self.get_logger().error(self._problem)
            return TransitionCallbackReturn.FAILURE
        self.timings = NodeTimings()
        self._create_interfaces(self._params)
        spec = self._engine.spec
        self.get_logger().info(
            f'configured bundle {spec.bundle_id[:12]} ({len(self._cameras)} cameras, {spec.action_dim} joints, '
            f'horizon {spec.horizon}, dt {spec.dt} s), mode {self._params.execution_mode}'
            f'{", DRY RUN" if self._params.dry_run else ""}'
        )
        self._state_label = 'inactive'
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start inference and the command stream; the first command ramps from the measured position."""
        with self._lock:
            self._commander.restart()
            self._chunks_published = 0
        result = super().on_activate(state)  # lifecycle publishers first, then the timer may use them
        self._worker = InferenceWorker(
            self._infer_once, self._on_worker_error, name='policy_inference', nice=self._params.inference_thread_nice
        )
        self._active = True
        self._state_label = 'active'
        self._publish_status()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop inference and commands; the last command sent is the measured position (hold)."""
        self._active = False
        self._stop_worker()
        self._send_hold()
        self._state_label = 'inactive'
        result = super().on_deactivate(state)
        self._publish_status()
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release subscriptions, publishers, timers and the engine."""
        self._release()
        self._state_label = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop safely from any state and release everything."""
        self.stop_safely()
        self._state_label = 'finalized'
        self._publish_status()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop safely (hold if commanding), stop an engine process, then destroy the node."""
        self.stop_safely()
        self._close_engine()
        super().destroy_node()

    def stop_safely(self) -> None:
        """Stop inference and, if commanding, send the hold command (for process exit)."""
        if self._active:
            self._active = False
            self._stop_worker()
            try:
                self._send_hold()
            except Exception:  # noqa: BLE001 - a caller may have shut the context down before destroying the node
                pass

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop commands after an unexpected error in a transition; the node goes back to unconfigured."""
        self._active = False
        self._stop_worker()
        self._release()
        self._state_label = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    # ---- set-up --------------------------------------------------------------------------

    def _setup_from_spec(self, p: PolicyParams, spec: BundleSpec) -> None:
        """Check parameters against the bundle and build the runtime parts; ValueError says what does not fit."""
        fit = check_against_bundle(p, spec)
        self._cameras = list(fit.camera_names)
        self._camera_topics = list(fit.camera_topics)
        self._camera_transports = list(fit.camera_transports)
        self._extra_state_topic = fit.extra_state_topic
        joints = list(spec.joint_names)
        self._joint_names = joints
        state_names = list(spec.state_names)
        if state_names[: len(joints)] != joints:
            raise ValueError(f'bundle state_names {state_names} do not start with its joint names {joints}')
        self._extra_names = state_names[len(joints) :]
        dof = len(joints)
        safety = SafetyFilter(
            np.array(fit.robot.lower_limits), np.array(fit.robot.upper_limits), np.array(fit.robot.max_velocity)
        )
        self._dt_ns = int(round(spec.dt * NS_PER_S))
        self._horizon = int(spec.horizon)
        self._queue = ActionQueue(dof, p.execution_mode, p.blend_new_weight)
        limits = StreamLimits(p.max_image_age, p.max_joint_state_age, p.max_extra_state_age, p.max_future_stamp)
        self._buffer = ObservationBuffer(self._cameras, len(self._extra_names), limits)
        self._commander = Commander(self._queue, safety, self._buffer, 1.0 / p.control_rate, p.dry_run)
        self._planner = ChunkPlanner(
            self._engine, self._queue, self._buffer, self._now_ns, p.execution_mode, p.noise_seed
        )
        self._matcher = JointStateMatcher(joints, p.allow_extra_joints)
        self._rejections = RejectionReporter(self._warn, p.warn_throttle)
        if p.default_instruction:
            self._buffer.put(INSTRUCTION_STREAM, check_instruction(p.default_instruction, p.max_instruction_length), 0)

    def _create_interfaces(self, p: PolicyParams) -> None:
        inputs = MutuallyExclusiveCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        status = MutuallyExclusiveCallbackGroup()
        subs = self._subscriptions_made
        for camera, topic, transport in zip(self._cameras, self._camera_topics, self._camera_transports):
            msg_type = CompressedImage if transport == 'compressed' else Image
            subs.append(
                self.create_subscription(
                    msg_type, topic, partial(self._on_camera, camera, topic), SENSOR_QOS, callback_group=inputs
                )
            )
        subs.append(
            self.create_subscription(
                JointState, p.joint_states_topic, self._on_joint_state, SENSOR_QOS, callback_group=inputs
            )
        )
        subs.append(
            self.create_subscription(
                String, p.instruction_topic, self._on_instruction, LATCHED_QOS, callback_group=inputs
            )
        )
        if self._extra_names:
            subs.append(
                self.create_subscription(
                    Float64MultiArray, self._extra_state_topic, self._on_extra_state, SENSOR_QOS, callback_group=inputs
                )
            )
        self._chunk_pub = self.create_lifecycle_publisher(ActionChunk, 'policy/action_chunk', RELIABLE_QOS)
        self._usage_pub = self.create_lifecycle_publisher(ExpertUsage, 'policy/expert_usage', RELIABLE_QOS)
        self._trajectory_pub = self.create_lifecycle_publisher(JointTrajectory, p.trajectory_topic, RELIABLE_QOS)
        self._command_pub = self.create_lifecycle_publisher(Float64MultiArray, p.command_topic, RELIABLE_QOS)
        self._joint_command_pub = self.create_lifecycle_publisher(JointState, p.joint_command_topic, RELIABLE_QOS)
        # Status and diagnostics also speak while inactive, so they are plain publishers.
        self._status_pub = self.create_publisher(PolicyStatus, 'policy/status', RELIABLE_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', RELIABLE_QOS)
        self._timers_made.append(self.create_timer(1.0 / p.control_rate, self._on_control_tick, callback_group=control))
        self._timers_made.append(self.create_timer(1.0 / p.status_rate, self._publish_status, callback_group=status))
        self._clock_jump = self.get_clock().create_jump_callback(CLOCK_JUMP, post_callback=self._on_clock_jump)

    def _release(self) -> None:
        """Destroy what configure made; the node can be configured again."""
        if self._clock_jump is not None:
            self._clock_jump.unregister()
        for timer in self._timers_made:
            self.destroy_timer(timer)
        for sub in self._subscriptions_made:
            self.destroy_subscription(sub)
        for pub in (self._chunk_pub, self._usage_pub, self._trajectory_pub, self._command_pub, self._joint_command_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        for pub in (self._status_pub, self._diagnostics_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._clock_jump = None
        self._timers_made, self._subscriptions_made = [], []
        self._chunk_pub = self._usage_pub = self._trajectory_pub = None
        self._command_pub = self._joint_command_pub = None
        self._status_pub = self._diagnostics_pub = None
        if self._commander is not None:
            self._commander.restart()
        self._close_engine()
        self._params = self._engine = self._queue = self._buffer = self._matcher = self._planner = None
        self._stale_inputs = []

    def _close_engine(self) -> None:
        if isinstance(self._engine, EngineProcess):
            self._engine.close()

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._frame_event.set()  # release a worker waiting for a camera frame
            if not self._worker.stop(timeout=30.0):
                self.get_logger().error('inference thread did not stop within 30 s')
            self._worker = None

    # ---- inputs --------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_camera(self, camera: str, topic: str, msg: Image | CompressedImage) -> None:
        arrival_perf = time.perf_counter_ns()
        stream, stamp, now = camera_stream(camera), stamp_to_ns(msg.header.stamp), self._now_ns()
        try:
            self._buffer.check_stamp(stream, stamp, now)  # before any decoding: a refused frame costs nothing
            frame = check_camera_image(msg, self._params.max_image_side)
            replaced = self._buffer.put_measurement(stream, frame, stamp, now)
        except InputRejectedError as err:
            self._rejections.reject(topic, err)
            return
        self.timings.frame_received(camera, replaced)
        if camera == self._cameras[0]:
            self._frame_arrival_perf_ns = arrival_perf
            self._frame_event.set()

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            positions = self._matcher.positions(msg)
            self._buffer.put_measurement(JOINT_STATE_STREAM, positions, stamp_to_ns(msg.header.stamp), self._now_ns())
        except (InputRejectedError, JointStateError) as err:
            self._rejections.reject(self._params.joint_states_topic, err)

    def _on_instruction(self, msg: String) -> None:
        try:
            text = check_instruction(msg.data, self._params.max_instruction_length)
        except InputRejectedError as err:
            self._rejections.reject(self._params.instruction_topic, err)
            return
        if text != self._buffer.get(INSTRUCTION_STREAM):
            self.get_logger().info(f'instruction: {text!r}')
        self._buffer.put(INSTRUCTION_STREAM, text, self._now_ns())

    def _on_extra_state(self, msg: Float64MultiArray) -> None:
        try:
            values = check_extra_state(msg.data, self._extra_names)
        except InputRejectedError as err:
            self._rejections.reject(self._extra_state_topic, err)
            return
        self._buffer.put(EXTRA_STATE_STREAM, values, self._now_ns())

    def _on_clock_jump(self, jump: TimeJump) -> None:
        """Start a new time line (the node clock went back): the inputs, stamps and plan of the old one are void."""
        with self._lock:
            if self._buffer is None:
                return
            self._buffer.forget_measurements()
            self._commander.stop_on_stale()
            self._commander.restart()
        self.get_logger().warning(
            f'node clock jumped by {jump.delta.nanoseconds / NS_PER_S:.3f} s: inputs and '
            'queued actions dropped, commanding resumes on fresh inputs'
        )

    def _warn(self, text: str) -> None:
        self.get_logger().warning(text)

    # ---- control loop --------------------------------------------------------------------

    def _on_control_tick(self) -> None:
        """Send the queued target for now through the safety filter; nothing while an input is stale."""
        if not self._active:
            return
        p = self._params
        now = self._now_ns()
        stale = self._buffer.stale_streams(now)
        if stale and stale != self._stale_inputs:
            self.get_logger().warning(
                f'inputs stale or missing: {stale}; no commands', throttle_duration_sec=p.warn_throttle
            )
        self._stale_inputs = stale
        if stale:
            with self._lock:
                self._commander.stop_on_stale()
            return
        worker = self._worker  # None once a deactivate from another thread has stopped it
        if worker is not None and self._queue.remaining(now) < p.refill_threshold * self._horizon:
            worker.request()
        with self._lock:
            try:
                command = self._commander.next_command(now)
            except UnsafeCommandError as err:
                command = None
                self._problem = f'holding: {err}'
                self.get_logger().error(self._problem, throttle_duration_sec=p.warn_throttle)
            if command is not None and not p.dry_run:
                self._publish_command(command, now)  # under the lock: a hold from another thread comes after it

    def _publish_command(self, command: np.ndarray, now: int) -> None:
        self.timings.command_sent()
        if self._params.command_stream in ('float64_array', 'both'):
            self._command_pub.publish(array_command(command))
        if self._params.command_stream in ('joint_state', 'both'):
            self._joint_command_pub.publish(joint_command(command, self._joint_names, now))

    def _send_hold(self) -> None:
        """Command the measured position once after commanding, so a position controller stops where the robot is.

        The plan is dropped with it, under the command lock: a control tick running meanwhile sends its command
        before the hold or finds nothing left to send.
        """
        if self._params is None:
            return
        now = self._now_ns()
        with self._lock:
            hold = self._commander.hold(now)
            self._commander.drop_plan()
            if hold is not None:
                self._publish_command(hold, now)

    # ---- inference -----------------------------------------------------------------------

    def _infer_once(self) -> None:
        """Plan a chunk from the newest inputs (on a new frame), merge it into the queue and publish it."""
        p = self._params
        if p.sync_inference_to_camera:
            self._frame_event.clear()
            if not self._frame_event.wait(p.max_image_age) or not self._active:
                return
        trigger_perf = self._frame_arrival_perf_ns if p.sync_inference_to_camera else time.perf_counter_ns()
        planned = self._planner.plan(self._chunks_published, self.timings.p95_engine_s)  # errors: the worker reports
        if planned is None:
            return
        result, start_ns, engine_s = planned.result, planned.start_ns, planned.engine_s
        if not self._active or not self._queue.merge(result.actions, start_ns, self._dt_ns, planned.generation):
            return
        index, total_s, bundle_id = self._chunks_published, result.timings['total'], self._engine.spec.bundle_id
        latency_s = max(self._now_ns() - start_ns, 0) / NS_PER_S
        self._chunk_pub.publish(
            chunk_message(
                result.actions,
                start_ns,
                self._dt_ns,
                self._joint_names,
                index,
                latency_s,
                total_s,
                bundle_id,
                planned.prefix_steps,
            )
        )
        self._usage_pub.publish(usage_message(result.routing, start_ns, index, bundle_id))
        self.timings.chunk_published(trigger_perf, engine_s, total_s)
        if p.publish_trajectory and not p.dry_run:
            self._publish_trajectory()
        self._chunks_published += 1
        self._problem = ''

    def _publish_trajectory(self) -> None:
        """Publish the queued future targets, made safe point by point, for a joint_trajectory_controller."""
        now = self._now_ns()
        try:
            with self._lock:
                planned = self._commander.planned_trajectory(now)
        except UnsafeCommandError as err:
            self._problem = f'trajectory not sent: {err}'
            return
        if planned is not None:
            self._trajectory_pub.publish(trajectory_message(now, *planned, self._joint_names))

    def _on_worker_error(self, err: BaseException) -> None:
        if isinstance(err, EngineProcessError):
            return  # the engine process ended: _on_engine_exit said so once and holds
        self._problem = f'inference failed: {type(err).__name__}: {err}'
        self.get_logger().error(self._problem, throttle_duration_sec=2.0)

    def _on_engine_exit(self, reason: str) -> None:
        """Stop now at the measured position: the engine process is gone, no chunk will come."""
        self._problem = f'{reason}: no inference, holding (reconfigure to start a new engine process)'
        self.get_logger().error(self._problem)
        if self._commander is None:
            return  # died while the first configure was loading it: nothing commanded yet
        now = self._now_ns()
        with self._lock:  # as in _send_hold: no command of a tick can follow the hold
            hold = self._commander.hold(now)
            self._commander.drop_plan()
            if hold is not None and self._active:
                self._publish_command(hold, now)

    # ---- status --------------------------------------------------------------------------

    @property
    def inference_in_flight(self) -> bool:
        """True from a chunk request until the chunk is merged or dropped, except while it waits for a camera frame.

        A driver of a simulated clock holds the clock meanwhile, so that inference takes no simulated time.
        """
        worker, p = self._worker, self._params
        if worker is None or p is None or not worker.busy:
            return False
        # Synced to the camera, the request waits for the next frame (the event cleared) before it plans.
        return not p.sync_inference_to_camera or self._frame_event.is_set()

    def status_message(self) -> PolicyStatus:
        """Return the current PolicyStatus (also published on policy/status)."""
        now = self._now_ns()
        p = self._params
        msg = PolicyStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state = self._state_label
        msg.execution_mode = p.execution_mode if p else ''
        msg.dry_run = bool(p.dry_run) if p else False
        msg.commanding = self._commander is not None and self._commander.commanding and self._active
        msg.last_inference_time = self.timings.last_engine_s
        msg.p95_inference_time = self.timings.p95_engine_s
        msg.chunks_published = self._chunks_published
        msg.queue_length = self._queue.remaining(now) if self._queue else 0
        msg.rejected_messages = self._rejections.total
        msg.stale_events = self._commander.stale_events if self._commander is not None else 0
        if self._active:
            msg.stale_inputs = list(self._stale_inputs)
        elif self._buffer is not None:
            msg.stale_inputs = self._buffer.stale_streams(now)
        msg.message = self._problem or self._rejections.last_problem
        return msg

    def _publish_status(self) -> None:
        if self._status_pub is None:
            return
        status = self.status_message()
        self._status_pub.publish(status)
        self._diagnostics_pub.publish(
            diagnostics_message(
                status, f'{self.get_name()}: policy', self.get_fully_qualified_name(), self._problem, self._active
            )
        )


def _load_engine(p: PolicyParams, on_exit: Callable[[str], None]) -> PolicyBackend:
    """Load the bundle with the runtime engine, here or in its process; BundleError names the file and the problem.

    on_exit(reason) is called when an engine process ends without being closed.
    """
    path, providers = resolve_bundle_path(p.bundle_path), p.providers or None
    if p.engine_host == 'process':
        return EngineProcess(path, providers, p.intra_op_threads, nice=p.inference_thread_nice, on_exit=on_exit)
    return PolicyEngine.from_bundle(path, providers=providers, intra_op_threads=p.intra_op_threads, warmup=True)


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run adamoe_ros policy_node` (configure/activate via the lifecycle services)."""
    return run_node(PolicyNode, args, startup_errors=(ParameterError,))


if __name__ == '__main__':
    raise SystemExit(main())
