"""policy_node: a managed node turning camera images, joint states and an instruction into safe joint commands.

configure loads the bundle and subscribes; activate starts inference and commands; deactivate holds the
measured position; cleanup and shutdown release everything. Inference runs in its own thread, the
per-step command stream on a timer, so chunks are computed while the robot keeps moving.
"""
import math
import threading
import time
from collections import deque
from functools import partial
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from adamoe_ros.engine import BundleSpec, Observation, PolicyEngine, RoutingStats
from adamoe_ros.joint_state import JointStateError, JointStateMatcher
from adamoe_ros.node_main import run_node
from adamoe_ros.parameters import ParameterError
from adamoe_ros.policy.chunk_queue import ActionQueue
from adamoe_ros.policy.inputs import (
    EXTRA_STATE_STREAM,
    INSTRUCTION_STREAM,
    JOINT_STATE_STREAM,
    ObservationBuffer,
    StreamLimits,
    camera_stream,
)
from adamoe_ros.policy.params import (
    PolicyParams,
    check_against_bundle,
    declare_policy_parameters,
    read_policy_parameters,
)
from adamoe_ros.policy.reporting import RejectionReporter
from adamoe_ros.policy.safety import SafetyFilter, UnsafeCommandError
from adamoe_ros.policy.validation import (
    InputRejectedError,
    StampOrder,
    camera_image_to_rgb,
    check_extra_state,
    check_instruction,
)
from adamoe_ros.policy.worker import InferenceWorker
from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, RELIABLE_QOS, SENSOR_QOS, ns_to_stamp, stamp_to_ns
from adamoe_ros_interfaces.msg import ActionChunk, ExpertUsage, PolicyStatus

SHIPPED_BUNDLES = Path(__file__).resolve().parents[1] / 'bundles'
TIMING_WINDOW = 50  # chunks kept for the p95 engine time and the benchmark


class PolicyNode(LifecycleNode):
    """Lifecycle node running an AdaMoE policy bundle with ONNX Runtime behind a safety filter."""

    def __init__(self, node_name: str = 'policy_node', **kwargs) -> None:
        """Declare parameters; kwargs (namespace, context, parameter_overrides, cli_args) go to the node."""
        super().__init__(node_name, **kwargs)
        self._active = False  # before anything that can fail: destroy_node runs on a half-built node too
        declare_policy_parameters(self)
        self._state_label = 'unconfigured'
        self._lock = threading.Lock()  # guards the command state shared by timer and worker
        self._reset_runtime()

    # ---- lifecycle -----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read parameters, load and check the bundle, create subscriptions and publishers."""
        try:
            self._params = read_policy_parameters(self)
            self._engine = _load_engine(self._params)
            self._setup_from_spec(self._params, self._engine.spec)
        except Exception as err:  # noqa: BLE001 - any configure problem must leave us unconfigured
            self.get_logger().error(f'configure failed: {err}')
            self._reset_runtime()
            return TransitionCallbackReturn.FAILURE
        self._create_interfaces(self._params)
        spec = self._engine.spec
        self.get_logger().info(
            f'configured bundle {spec.bundle_id[:12]} ({len(self._cameras)} cameras, {spec.action_dim} joints, '
            f'horizon {spec.horizon}, dt {spec.dt} s), mode {self._params.execution_mode}'
            f'{", DRY RUN" if self._params.dry_run else ""}')
        self._state_label = 'inactive'
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start inference and the command stream; the first command ramps from the measured position."""
        with self._lock:
            self._queue.clear()
            self._last_command = None
            self._commanding = False
            self._chunks_published = 0
        result = super().on_activate(state)  # lifecycle publishers first, then the timer may use them
        self._worker = InferenceWorker(self._infer_once, self._on_worker_error, name='policy_inference',
                                       nice=self._params.inference_thread_nice)
        self._active = True
        self._state_label = 'active'
        self._publish_status()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop inference and commands; the last command sent is the measured position (hold)."""
        self._active = False
        self._stop_worker()
        self._send_hold()
        with self._lock:
            self._queue.clear()
            self._commanding = False
        self._state_label = 'inactive'
        result = super().on_deactivate(state)
        self._publish_status()
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release subscriptions, publishers, timers and the engine."""
        self._destroy_interfaces()
        self._reset_runtime()
        self._state_label = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop safely from any state and release everything."""
        self.stop_safely()
        self._state_label = 'finalized'
        self._publish_status()
        self._destroy_interfaces()
        self._reset_runtime()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop safely (hold if commanding), then destroy the node."""
        self.stop_safely()
        super().destroy_node()

    def stop_safely(self) -> None:
        """Stop inference and, if commanding, send the hold command (for process exit)."""
        if self._active:
            self._active = False
            self._stop_worker()
            try:
                self._send_hold()
            except Exception:  # noqa: BLE001 - the context may already be shut down on Ctrl-C
                pass

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop commands after an unexpected error in a transition; the node goes back to unconfigured."""
        self._active = False
        self._stop_worker()
        self._destroy_interfaces()
        self._reset_runtime()
        self._state_label = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    # ---- set-up --------------------------------------------------------------------------

    def _reset_runtime(self) -> None:
        self._params: PolicyParams | None = None
        self._engine: PolicyEngine | None = None
        self._worker: InferenceWorker | None = None
        self._subscriptions_made: list = []
        self._publishers_made: list = []
        self._timers_made: list = []
        self._queue: ActionQueue | None = None
        self._buffer: ObservationBuffer | None = None
        self._safety: SafetyFilter | None = None
        self._last_command: np.ndarray | None = None
        self._commanding = False
        self._chunks_published = 0
        self._stale_events = 0
        self._stale_inputs: list[str] = []
        self._nonfinite_chunks = 0
        self._problem = ''
        self._engine_times: deque[float] = deque(maxlen=TIMING_WINDOW)
        # Read by benchmarks/bench_policy_node.py: per-chunk latencies and command publish times.
        self.chunk_timings: deque[dict[str, float]] = deque(maxlen=1000)
        self.command_perf_ns: deque[int] = deque(maxlen=10000)
        self._frame_event = threading.Event()
        self._frame_arrival_perf_ns = 0
        self._rejections = RejectionReporter(self._warn, 2.0)

    def _setup_from_spec(self, p: PolicyParams, spec: BundleSpec) -> None:
        """Check parameters against the bundle and build the runtime parts; ValueError says what does not fit."""
        fit = check_against_bundle(p, spec)
        self._cameras = list(fit.camera_names)
        self._camera_topics = list(fit.camera_topics)
        self._camera_transports = list(fit.camera_transports)
        joints = list(spec.joint_names)
        self._joint_names = joints
        state_names = list(spec.state_names)
        if state_names[:len(joints)] != joints:
            raise ValueError(f'bundle state_names {state_names} do not start with its joint names {joints}')
        self._extra_names = state_names[len(joints):]
        dof = len(joints)
        self._safety = SafetyFilter(np.array(fit.robot.lower_limits), np.array(fit.robot.upper_limits),
                                    np.array(fit.robot.max_velocity))
        self._dt_ns = int(round(spec.dt * NS_PER_S))
        self._horizon = int(spec.horizon)
        self._queue = ActionQueue(dof, p.execution_mode, p.blend_new_weight)
        limits = StreamLimits(p.max_image_age, p.max_joint_state_age, p.max_extra_state_age)
        self._buffer = ObservationBuffer(self._cameras, dof, len(self._extra_names), limits)
        self._matcher = JointStateMatcher(joints, p.allow_extra_joints)
        self._orders = {s: StampOrder() for s in [*map(camera_stream, self._cameras), JOINT_STATE_STREAM]}
        self._rejections = RejectionReporter(self._warn, p.warn_throttle)
        if p.default_instruction:
            self._buffer.put(INSTRUCTION_STREAM, check_instruction(p.default_instruction,
                                                                   p.max_instruction_length), 0)

    def _create_interfaces(self, p: PolicyParams) -> None:
        inputs = MutuallyExclusiveCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        status = MutuallyExclusiveCallbackGroup()
        subs = self._subscriptions_made
        for camera, topic, transport in zip(self._cameras, self._camera_topics, self._camera_transports):
            msg_type = CompressedImage if transport == 'compressed' else Image
            subs.append(self.create_subscription(
                msg_type, topic, partial(self._on_camera, camera, topic), SENSOR_QOS, callback_group=inputs))
        subs.append(self.create_subscription(JointState, p.joint_states_topic, self._on_joint_state, SENSOR_QOS,
                                             callback_group=inputs))
        subs.append(self.create_subscription(String, p.instruction_topic, self._on_instruction, LATCHED_QOS,
                                             callback_group=inputs))
        if self._extra_names:
            subs.append(self.create_subscription(Float64MultiArray, p.extra_state_topic, self._on_extra_state,
                                                 SENSOR_QOS, callback_group=inputs))
        pubs = self._publishers_made
        self._chunk_pub = self.create_lifecycle_publisher(ActionChunk, 'policy/action_chunk', RELIABLE_QOS)
        self._usage_pub = self.create_lifecycle_publisher(ExpertUsage, 'policy/expert_usage', RELIABLE_QOS)
        self._trajectory_pub = self.create_lifecycle_publisher(JointTrajectory, p.trajectory_topic, RELIABLE_QOS)
        self._command_pub = self.create_lifecycle_publisher(Float64MultiArray, p.command_topic, RELIABLE_QOS)
        self._joint_command_pub = self.create_lifecycle_publisher(JointState, p.joint_command_topic, RELIABLE_QOS)
        # Status and diagnostics also speak while inactive, so they are plain publishers.
        self._status_pub = self.create_publisher(PolicyStatus, 'policy/status', RELIABLE_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', RELIABLE_QOS)
        pubs += [self._chunk_pub, self._usage_pub, self._trajectory_pub, self._command_pub,
                 self._joint_command_pub, self._status_pub, self._diagnostics_pub]
        self._timers_made.append(self.create_timer(1.0 / p.control_rate, self._on_control_tick,
                                                   callback_group=control))
        self._timers_made.append(self.create_timer(1.0 / p.status_rate, self._publish_status,
                                                   callback_group=status))

    def _destroy_interfaces(self) -> None:
        for timer in self._timers_made:
            self.destroy_timer(timer)
        for sub in self._subscriptions_made:
            self.destroy_subscription(sub)
        for pub in self._publishers_made:
            if pub in (getattr(self, '_status_pub', None), getattr(self, '_diagnostics_pub', None)):
                self.destroy_publisher(pub)
            else:
                self.destroy_lifecycle_publisher(pub)
        self._status_pub = None
        self._timers_made, self._subscriptions_made, self._publishers_made = [], [], []

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
        stream = camera_stream(camera)
        try:
            stamp = stamp_to_ns(msg.header.stamp)
            rgb = camera_image_to_rgb(msg, self._params.max_image_side)
            self._orders[stream].check(stamp)
        except InputRejectedError as err:
            self._rejections.reject(topic, str(err))
            return
        self._buffer.put(stream, rgb, self._now_ns(), stamp)
        if camera == self._cameras[0]:
            self._frame_arrival_perf_ns = arrival_perf
            self._frame_event.set()

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            stamp = stamp_to_ns(msg.header.stamp)
            positions = self._matcher.positions(msg)
            self._orders[JOINT_STATE_STREAM].check(stamp)
        except (InputRejectedError, JointStateError) as err:
            self._rejections.reject(self._params.joint_states_topic, str(err))
            return
        self._buffer.put(JOINT_STATE_STREAM, positions, self._now_ns(), stamp)

    def _on_instruction(self, msg: String) -> None:
        try:
            text = check_instruction(msg.data, self._params.max_instruction_length)
        except InputRejectedError as err:
            self._rejections.reject(self._params.instruction_topic, str(err))
            return
        if text != self._buffer.get(INSTRUCTION_STREAM):
            self.get_logger().info(f'instruction: {text!r}')
        self._buffer.put(INSTRUCTION_STREAM, text, self._now_ns())

    def _on_extra_state(self, msg: Float64MultiArray) -> None:
        try:
            values = check_extra_state(msg.data, self._extra_names)
        except InputRejectedError as err:
            self._rejections.reject(self._params.extra_state_topic, str(err))
            return
        self._buffer.put(EXTRA_STATE_STREAM, values, self._now_ns())

    def _warn(self, text: str) -> None:
        self.get_logger().warning(text)

    # ---- control loop --------------------------------------------------------------------

    def _on_control_tick(self) -> None:
        """Send the queued target for now through the safety filter, or nothing when unsafe."""
        if not self._active:
            return
        now = self._now_ns()
        stale = self._buffer.stale_streams(now)
        if stale != self._stale_inputs and stale:
            self.get_logger().warning(f'inputs stale or missing: {stale}; no commands',
                                      throttle_duration_sec=self._params.warn_throttle)
        self._stale_inputs = stale
        if stale:
            with self._lock:
                if self._commanding:
                    self._stale_events += 1
                # The queue was planned from inputs now known to be old; resume from the measured
                # position with a fresh chunk.
                self._commanding = False
                self._last_command = None
                self._queue.clear()
            return
        if self._queue.remaining(now) < self._params.refill_threshold * self._horizon:
            self._worker.request()
        target = self._queue.sample(now)
        if target is None:
            with self._lock:
                self._commanding = False
            return
        with self._lock:
            reference = self._last_command if self._last_command is not None else self._measured()
            try:
                command = self._safety.limit(target, reference, 1.0 / self._params.control_rate)
            except UnsafeCommandError as err:
                self._problem = f'holding: {err}'
                self.get_logger().error(self._problem, throttle_duration_sec=self._params.warn_throttle)
                self._queue.clear()
                self._commanding = False
                return
            self._last_command = command
            self._commanding = not self._params.dry_run
        if not self._params.dry_run:
            self._publish_command(command)

    def _measured(self) -> np.ndarray:
        return np.asarray(self._buffer.get(JOINT_STATE_STREAM), dtype=np.float64)

    def _publish_command(self, command: np.ndarray) -> None:
        self.command_perf_ns.append(time.perf_counter_ns())
        values = [float(v) for v in command]
        if self._params.command_stream in ('float64_array', 'both'):
            self._command_pub.publish(Float64MultiArray(data=values))
        if self._params.command_stream in ('joint_state', 'both'):
            msg = JointState(name=self._joint_names, position=values)
            msg.header.stamp = self.get_clock().now().to_msg()
            self._joint_command_pub.publish(msg)

    def _send_hold(self) -> None:
        """Command the measured position once, so a position controller stops where the robot is.

        Only after commanding, and only from fresh joint states: an old measurement could be a jump.
        """
        if self._params is None or self._params.dry_run or self._buffer is None or self._last_command is None:
            return
        measured = self._buffer.get(JOINT_STATE_STREAM)
        fresh = JOINT_STATE_STREAM not in self._buffer.stale_streams(self._now_ns())
        if measured is None or not fresh or not np.all(np.isfinite(measured)):
            return
        with self._lock:
            # The measured position is where the robot is: commanding it stops motion without a jump.
            hold = self._safety.clamp_position(measured)
            self._last_command = None
        self._publish_command(hold)

    # ---- inference -----------------------------------------------------------------------

    def _infer_once(self) -> None:
        """Take an observation (on a fresh frame), run the engine, merge and publish the chunk."""
        p = self._params
        if p.sync_inference_to_camera:
            self._frame_event.clear()
            if not self._frame_event.wait(p.max_image_age) or not self._active:
                return
        trigger_perf = self._frame_arrival_perf_ns if p.sync_inference_to_camera else time.perf_counter_ns()
        start_ns = self._now_ns()
        if self._buffer.stale_streams(start_ns):
            return
        snapshot = self._buffer.snapshot()
        prefix = None
        if p.execution_mode == 'rtc':
            delay_steps = math.ceil(self._expected_latency_s() * NS_PER_S / self._dt_ns)
            prefix = self._queue.rtc_prefix(start_ns, self._dt_ns, self._horizon, delay_steps)
        observation = Observation(images=snapshot.images, state=snapshot.state, instruction=snapshot.instruction)
        seed = None if p.noise_seed < 0 else p.noise_seed + self._chunks_published
        engine_start = time.perf_counter_ns()
        result = self._engine.infer(
            observation,
            prefix_actions=None if prefix is None else prefix.actions,
            inference_delay=0 if prefix is None else prefix.inference_delay,
            noise_seed=seed)
        engine_s = (time.perf_counter_ns() - engine_start) * 1e-9
        actions = np.asarray(result.actions, dtype=np.float64)
        if actions.shape != (self._horizon, len(self._joint_names)) or not np.all(np.isfinite(actions)):
            self._nonfinite_chunks += 1
            self._problem = f'engine returned an unusable chunk (shape {actions.shape}, non-finite or wrong)'
            self.get_logger().error(self._problem, throttle_duration_sec=p.warn_throttle)
            return
        if not self._active:
            return
        self._queue.merge(actions, start_ns, self._dt_ns)
        self._engine_times.append(float(result.timings.get('total', engine_s)))
        index = self._chunks_published
        # Stamped with the observation time on the node clock, the base of the action times in the queue.
        self._publish_chunk(actions, start_ns, index, float(result.timings.get('total', engine_s)))
        self._publish_usage(result.routing, start_ns, index)
        publish_perf = time.perf_counter_ns()
        if p.publish_trajectory and not p.dry_run:
            self._publish_trajectory()
        self._chunks_published += 1
        self._problem = ''
        self.chunk_timings.append({
            'arrival_to_publish_s': (publish_perf - trigger_perf) * 1e-9,
            'engine_s': engine_s,
            'engine_total_s': float(result.timings.get('total', engine_s)),
        })

    def _expected_latency_s(self) -> float:
        """Estimate the time from observation to merged chunk: the p95 of recent engine times."""
        if not self._engine_times:
            return 0.0
        return float(np.percentile(self._engine_times, 95))

    def _publish_chunk(self, actions: np.ndarray, start_ns: int, index: int, inference_s: float) -> None:
        msg = ActionChunk()
        msg.header.stamp = ns_to_stamp(start_ns)
        msg.joint_names = self._joint_names
        msg.horizon = self._horizon
        msg.action_dim = len(self._joint_names)
        msg.dt = self._dt_ns / NS_PER_S
        msg.actions = actions.astype(np.float32).ravel().tolist()
        msg.chunk_index = index
        msg.latency = max(self._now_ns() - start_ns, 0) / NS_PER_S
        msg.inference_time = inference_s
        msg.bundle_id = self._engine.spec.bundle_id
        self._chunk_pub.publish(msg)

    def _publish_usage(self, routing: RoutingStats | None, stamp_ns: int, index: int) -> None:
        if routing is None:
            return
        fraction = np.asarray(routing.token_fraction, dtype=np.float32)
        weight = np.asarray(routing.mean_weight, dtype=np.float32)
        msg = ExpertUsage()
        msg.header.stamp = ns_to_stamp(stamp_ns)
        msg.bundle_id = self._engine.spec.bundle_id
        msg.chunk_index = index
        msg.routing_mode = str(routing.mode)
        msg.num_layers, msg.num_experts = (int(fraction.shape[0]), int(fraction.shape[1])) \
            if fraction.ndim == 2 else (0, 0)
        msg.top_k = int(routing.top_k)
        msg.layer_indices = [int(i) for i in routing.layer_indices]
        msg.token_fraction = fraction.ravel().tolist()
        msg.mean_weight = weight.ravel().tolist()
        self._usage_pub.publish(msg)

    def _publish_trajectory(self) -> None:
        """Publish the queued future targets, made safe point by point, for a joint_trajectory_controller."""
        now = self._now_ns()
        times, targets = self._queue.future(now)
        if times.size == 0:
            return
        with self._lock:
            reference = self._last_command if self._last_command is not None else self._measured()
        steps = np.diff(np.concatenate([[now], times])) / NS_PER_S
        try:
            safe = self._safety.limit_sequence(targets, reference, steps)
        except UnsafeCommandError as err:
            self._problem = f'trajectory not sent: {err}'
            return
        msg = JointTrajectory()
        msg.header.stamp = ns_to_stamp(now)
        msg.joint_names = self._joint_names
        for t, position in zip(times, safe):
            point = JointTrajectoryPoint(positions=[float(v) for v in position])
            offset = int(t - now)
            point.time_from_start.sec, point.time_from_start.nanosec = offset // NS_PER_S, offset % NS_PER_S
            msg.points.append(point)
        self._trajectory_pub.publish(msg)

    def _on_worker_error(self, err: BaseException) -> None:
        self._problem = f'inference failed: {type(err).__name__}: {err}'
        self.get_logger().error(self._problem, throttle_duration_sec=2.0)

    # ---- status --------------------------------------------------------------------------

    def status_message(self) -> PolicyStatus:
        """Return the current PolicyStatus (also published on policy/status)."""
        msg = PolicyStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state = self._state_label
        p = self._params
        msg.execution_mode = p.execution_mode if p else ''
        msg.dry_run = bool(p.dry_run) if p else False
        msg.commanding = bool(self._commanding and self._active)
        if self._engine_times:
            msg.last_inference_time = self._engine_times[-1]
            msg.p95_inference_time = float(np.percentile(self._engine_times, 95))
        msg.chunks_published = self._chunks_published
        msg.queue_length = self._queue.remaining(self._now_ns()) if self._queue else 0
        msg.rejected_messages = self._rejections.total
        msg.stale_events = self._stale_events
        msg.stale_inputs = list(self._stale_inputs) if self._active else (
            self._buffer.stale_streams(self._now_ns()) if self._buffer else [])
        msg.message = self._problem or self._rejections.last_problem
        return msg

    def _publish_status(self) -> None:
        if getattr(self, '_status_pub', None) is None:
            return
        status = self.status_message()
        self._status_pub.publish(status)
        diag = DiagnosticStatus(name=f'{self.get_name()}: policy', hardware_id=self.get_fully_qualified_name())
        if self._problem:
            diag.level, diag.message = DiagnosticStatus.ERROR, self._problem
        elif status.stale_inputs and self._active:
            diag.level, diag.message = DiagnosticStatus.WARN, f'stale inputs: {", ".join(status.stale_inputs)}'
        else:
            diag.level, diag.message = DiagnosticStatus.OK, status.state
        diag.values = [KeyValue(key=k, value=str(v)) for k, v in (
            ('state', status.state), ('commanding', status.commanding), ('chunks', status.chunks_published),
            ('p95_inference_time', f'{status.p95_inference_time:.4f}'),
            ('rejected_messages', status.rejected_messages), ('stale_events', status.stale_events))]
        self._diagnostics_pub.publish(DiagnosticArray(header=status.header, status=[diag]))


def resolve_bundle_path(bundle_path: str) -> Path:
    """Return the bundle folder: a path as given, or the name of a bundle shipped in adamoe_ros/bundles/."""
    if not bundle_path:
        raise ValueError('parameter bundle_path is empty')
    path = Path(bundle_path).expanduser()
    shipped = SHIPPED_BUNDLES / bundle_path
    if not path.exists() and '/' not in bundle_path and shipped.is_dir():
        return shipped
    return path


def _load_engine(p: PolicyParams) -> PolicyEngine:
    """Load the bundle with the runtime engine; BundleError messages name the file and the problem."""
    return PolicyEngine.from_bundle(resolve_bundle_path(p.bundle_path), providers=p.providers or None,
                                    intra_op_threads=p.intra_op_threads, warmup=True)


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run adamoe_ros policy_node` (configure/activate via the lifecycle services)."""
    return run_node(PolicyNode, args, startup_errors=(ParameterError,))


if __name__ == '__main__':
    raise SystemExit(main())
