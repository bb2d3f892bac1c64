"""Soak test: the sim bridge and the policy node in their own processes for N minutes, watched from outside.

    python -m adamoe_ros.tools.soak [--minutes 30] [--sample-period 30] [--out outputs/soak] [--kill-sim-at 10]
    (scripts/soak.sh takes the same options)

The nodes start as `ros2 launch` starts them, from launch/sim_policy.runner.yaml without the scripted expert:
each in its own process with its params file and overrides. This process is the driver: it configures the
policy node through its lifecycle services, resets the sim whenever an episode succeeds or runs out of time
(deactivate, reset, activate), checks every command the node sends, and every --sample-period seconds
reads RSS, threads and open descriptors of each process, the command and chunk rates, the engine p99 and the
stale events. It prints a table and a verdict line and writes samples.csv and soak.json to --out.

Clock: the policy node runs on sim time (use_sim_time, /clock from the sim bridge), as the runner file says: its
control timer and its input ages then follow the physics even when the sim falls behind real time on a loaded
machine. The soak sets its command_stream to 'both': the sim executes the Float64MultiArray commands, and the
driver reads the JointState copy of each, the same positions stamped with the node clock at its control tick. Each
is judged on that clock, not on arrival (soak_checks.CommandJudge): against the limits, the previous command of
its episode and the position measured at its stamp; the stamps also time the command stream (the command rate, the
sim-kill hold). The driver measures the chunk rate on its own view of /clock.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from adamoe_contract.robots import load_robot_profile
from adamoe_ros.closed_loop.protocol import EPISODE_TIME_S, SOAK_FIRST_SEED
from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, RELIABLE_QOS, SENSOR_QOS, call_service, stamp_to_ns
from adamoe_ros.runner import NODE_CLASSES, NodeSpec, load_specs
from adamoe_ros.tools.proc_stats import read_process_stats
from adamoe_ros.tools.soak_checks import (
    BAD_KINDS,
    Check,
    CommandJudge,
    CommandLimits,
    FaultRecord,
    Goals,
    ProcessSample,
    RateCounter,
    Sample,
    TimeLines,
    command_check,
    exit_check,
    fault_checks,
    rate_check,
    resource_checks,
    table_header,
    table_row,
    verdict_line,
)
from adamoe_ros_interfaces.msg import ActionChunk, PolicyStatus
from adamoe_ros_interfaces.srv import GetTaskStatus, ResetSim

RUNNER_YAML = Path(__file__).resolve().parents[2] / 'launch' / 'sim_policy.runner.yaml'
SIM, POLICY = 'sim_bridge_node', 'policy_node'  # executables of the stack, as in the runner file
# What the driver reads from the policy node: its robot profile gives the limits the node enforces.
POLICY_PARAMETERS = (
    'control_rate',
    'robot_profile',
    'command_topic',
    'command_stream',
    'joint_command_topic',
    'joint_states_topic',
    'instruction_topic',
    'dry_run',
)
POLL_S = 0.2  # main loop period: drain and check commands, poll the task status
STARTUP_S = 120.0  # a cold start imports MuJoCo and ONNX Runtime and warms the engine up
STATUS_TIMEOUT_S = 1.0  # short, so a dead sim delays samples little


@dataclass
class SoakConfig:
    """How long to soak, how often to sample, where to write, and the optional sim-kill fault."""

    minutes: float = 30.0
    sample_period: float = 30.0  # wall seconds
    warmup_minutes: float = 5.0  # growth is judged from this long after each process started
    out: Path = Path('outputs/soak')
    kill_sim_at: float | None = None  # minute at which the sim bridge is SIGKILLed and restarted
    stack: Path = RUNNER_YAML
    real_time_factor: float = 1.0
    episode_time: float = EPISODE_TIME_S  # sim seconds before an episode counts as failed
    first_seed: int = SOAK_FIRST_SEED

    def __post_init__(self) -> None:
        """Refuse settings that cannot give a verdict."""
        if not self.sample_period > 0:
            raise ValueError(f'sample period must be positive, got {self.sample_period}')
        if not 0 <= self.warmup_minutes < self.minutes:
            raise ValueError(
                f'the warm-up ({self.warmup_minutes} min) must be shorter than the soak ({self.minutes} min)'
            )
        if self.kill_sim_at is not None and not 0 < self.kill_sim_at < self.minutes:
            raise ValueError(f'--kill-sim-at {self.kill_sim_at} must fall inside the soak (0..{self.minutes} min)')


@dataclass
class SoakResult:
    """Everything the soak measured and judged."""

    samples: list[Sample]
    checks: list[Check]
    control_rate: float
    command_rate_hz: float | None  # over the soak, on the node clock
    commands: int
    bad: dict[str, int]
    fault: FaultRecord | None = None

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def verdict(self) -> str:
        """The verdict line."""
        return verdict_line(self.checks)


class StackDiedError(RuntimeError):
    """A node process of the stack exited on its own."""


class NodeProcess:
    """One node of the stack in its own process, started like `ros2 run adamoe_ros <executable> --ros-args ...`."""

    def __init__(self, spec: NodeSpec, out: Path) -> None:
        """Write the spec's overrides as a params file (the launch file's dict) and build the command line."""
        self.spec = spec
        self.name = spec.name or spec.executable
        overrides = out / f'{self.name}.params.yaml'
        overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': spec.parameters}}))
        module = NODE_CLASSES[spec.executable].split(':')[0]
        self.command = [sys.executable, '-m', module, '--ros-args', '-r', f'__node:={self.name}']
        if spec.namespace:
            self.command += ['-r', f'__ns:=/{spec.namespace.strip("/")}']
        for params_file in filter(None, (spec.params_file, overrides)):
            self.command += ['--params-file', str(params_file)]
        self.log_path = out / f'{self.name}.log'
        self.log_path.write_bytes(b'')
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> None:
        """Start the process, appending its output to <out>/<name>.log."""
        with self.log_path.open('ab') as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 20.0) -> int | None:
        """Ctrl-C the process as launch does (SIGKILL if it does not exit in time); return its exit code."""
        if self.alive:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return None if self.proc is None else self.proc.returncode


@dataclass
class _Command:
    """The JointState copy of a command as received: wall arrival time, its run, and its stamp and positions."""

    wall: float
    run: int
    stamp_ns: int  # the node clock at its control tick
    names: tuple[str, ...]
    values: np.ndarray


@dataclass
class _Measured:
    """A joint state as received: its time line of the sim clock, its stamp and its positions."""

    line: int
    stamp_ns: int
    names: tuple[str, ...]
    values: np.ndarray


class SoakDriver(Node):
    """Clients, subscriptions and the instruction publisher of the soak; callbacks only record."""

    def __init__(self, policy_name: str, **kwargs: Any) -> None:
        """Create the service clients; topics come later, from the policy node's parameters."""
        super().__init__('soak_driver', parameter_overrides=[Parameter('use_sim_time', value=True)], **kwargs)
        self.reset_client = self.create_client(ResetSim, 'sim/reset')
        self.status_client = self.create_client(GetTaskStatus, 'sim/task_status')
        self.lifecycle_client = self.create_client(ChangeState, f'{policy_name}/change_state')
        self.parameter_client = self.create_client(GetParameters, f'{policy_name}/get_parameters')
        self.lock = threading.Lock()
        self.run_id = 0  # bumped by the main thread whenever the command stream is meant to break
        self.commands: list[_Command] = []
        self.measured: list[_Measured] = []
        self.clock = TimeLines()  # every /clock the sims published, reliably: the killed sim's last one
        self.joint_lines = TimeLines()  # of the joint_states stamps
        self.chunks: list[tuple[int, float]] = []  # (sim arrival ns, engine seconds)
        self.stale_events = 0
        self.inputs_back_at: float | None = None  # first joint_states after watch_inputs() (wall)
        self._watching = False

    def policy_parameters(self) -> dict[str, Any]:
        """Read POLICY_PARAMETERS from the policy node; RuntimeError names any it does not have."""
        deadline = time.monotonic() + STARTUP_S
        request = GetParameters.Request(names=list(POLICY_PARAMETERS))
        while True:
            # Asked until it answers: the node may still be starting, and a request no server took is never answered.
            try:
                response = call_service(self.parameter_client, request, timeout=5.0)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f'{self.parameter_client.srv_name} did not answer in {STARTUP_S:.0f} s'
                    ) from None
        missing = [n for n, v in zip(POLICY_PARAMETERS, response.values) if v.type == ParameterType.PARAMETER_NOT_SET]
        if missing:
            raise RuntimeError(f'the policy node has no parameter {missing}')
        return {n: parameter_value_to_python(v) for n, v in zip(POLICY_PARAMETERS, response.values)}

    def listen(self, params: dict[str, Any]) -> None:
        """Subscribe to the topics the policy node uses and create the instruction publisher."""
        self.instruction_pub = self.create_publisher(String, params['instruction_topic'], LATCHED_QOS)
        self.create_subscription(JointState, params['joint_states_topic'], self._on_joint_state, SENSOR_QOS)
        self.create_subscription(JointState, params['joint_command_topic'], self._on_command, RELIABLE_QOS)
        self.create_subscription(Clock, '/clock', self._on_clock, RELIABLE_QOS)
        self.create_subscription(ActionChunk, 'policy/action_chunk', self._on_chunk, RELIABLE_QOS)
        self.create_subscription(PolicyStatus, 'policy/status', self._on_status, RELIABLE_QOS)

    def transition(self, transition_id: int) -> None:
        """Change the policy node's lifecycle state; RuntimeError when it refuses."""
        if not self.lifecycle_client.wait_for_service(timeout_sec=STARTUP_S):
            raise RuntimeError(f'{self.lifecycle_client.srv_name} did not come up in {STARTUP_S:.0f} s')
        request = ChangeState.Request(transition=Transition(id=transition_id))
        if not call_service(self.lifecycle_client, request, timeout=STARTUP_S).success:
            raise RuntimeError(f'policy node refused lifecycle transition {transition_id} (see its log)')

    def watch_inputs(self) -> None:
        """Record the wall time of the next joint_states message in inputs_back_at."""
        with self.lock:
            self.inputs_back_at, self._watching = None, True

    def take(self) -> tuple[list[_Command], list[_Measured], list[tuple[int, float]]]:
        """Hand the commands, joint states and chunks received since the last call to the main thread."""
        with self.lock:
            commands, measured, chunks = self.commands, self.measured, self.chunks
            self.commands, self.measured, self.chunks = [], [], []
        return commands, measured, chunks

    def clock_end(self, line: int) -> int:
        """Return the newest /clock received on time line `line` (on the current one: so far)."""
        with self.lock:
            return self.clock.ends[line]

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_joint_state(self, msg: JointState) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        positions = np.asarray(msg.position, dtype=np.float64)
        with self.lock:
            self.measured.append(_Measured(self.joint_lines.add(stamp), stamp, tuple(msg.name), positions))
            if self._watching:
                self.inputs_back_at, self._watching = time.monotonic(), False

    def _on_command(self, msg: JointState) -> None:
        positions = np.asarray(msg.position, dtype=np.float64)
        with self.lock:
            self.commands.append(
                _Command(time.monotonic(), self.run_id, stamp_to_ns(msg.header.stamp), tuple(msg.name), positions)
            )

    def _on_clock(self, msg: Clock) -> None:
        with self.lock:
            self.clock.add(stamp_to_ns(msg.clock))

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self.lock:
            self.chunks.append((self._now_ns(), float(msg.inference_time)))

    def _on_status(self, msg: PolicyStatus) -> None:
        self.stale_events = int(msg.stale_events)


class Soak:
    """The main thread's side: episodes, the sim-kill fault, command checks, samples and the verdict."""

    def __init__(
        self, cfg: SoakConfig, driver: SoakDriver, processes: dict[str, NodeProcess], log: Any = print
    ) -> None:
        """Hold the running stack; nothing happens before run()."""
        self.cfg, self.driver, self.processes, self.log = cfg, driver, processes, log
        self.goals = Goals(warmup_s=60.0 * cfg.warmup_minutes)
        self.names = list(processes)
        self.samples: list[Sample] = []
        self.bad = dict.fromkeys(BAD_KINDS, 0)
        self.commands = 0
        self.episodes = self.successes = 0
        self.command_lines = TimeLines()  # of the command stamps
        self.fault: FaultRecord | None = None
        self.problems: list[Check] = []
        self._pending: collections.deque[tuple[_Command, int]] = collections.deque()  # (command, time line) to judge
        self._sim_line = 0  # the time line of the running sim: one per (re)start
        self._previous_stamp: tuple[int, int, int] | None = None  # (run, time line, stamp) of the last timed command
        self._window_chunks: list[float] = []
        self._window_sim_ns = 0
        self._expected_down: str | None = None  # the process the soak itself killed

    # ---- set-up and episodes ----------------------------------------------------------------

    def run(self) -> SoakResult:
        """Configure the policy, run episodes until the time is up, then judge."""
        params = self.driver.policy_parameters()
        if params['dry_run'] or params['command_stream'] != 'both':
            raise RuntimeError(
                'the soak checks the Float64MultiArray commands and times their JointState copies: the policy node '
                f'must send both (dry_run {params["dry_run"]}, command_stream {params["command_stream"]!r})'
            )
        self.control_rate = float(params['control_rate'])
        self.total_rate, self.window_rate = self._rate_counter(), self._rate_counter()
        # The node commands the profile's joints in its order, within its limits (it checks the bundle agrees).
        self.robot = load_robot_profile(params['robot_profile'])
        self.judge = CommandJudge(
            CommandLimits.at_rate(
                self.robot.lower_limits, self.robot.upper_limits, self.robot.max_velocity, self.control_rate
            )
        )
        self.driver.listen(params)
        self.driver.instruction_pub.publish(String(data=self.robot.default_instruction))
        self.driver.transition(Transition.TRANSITION_CONFIGURE)
        if not self.driver.reset_client.wait_for_service(timeout_sec=STARTUP_S):
            raise RuntimeError('sim/reset did not come up')
        self.log(
            f'soak: {self.cfg.minutes:g} min, sample every {self.cfg.sample_period:g} s, control_rate '
            f'{self.control_rate:g} Hz (sim time), real_time_factor {self.cfg.real_time_factor:g}, '
            f'warm-up {self.cfg.warmup_minutes:g} min'
            + (f', sim killed at minute {self.cfg.kill_sim_at:g}' if self.cfg.kill_sim_at is not None else '')
        )
        self.log(table_header(self.names))
        self.t0 = time.monotonic()
        self.end = self.t0 + 60.0 * self.cfg.minutes
        self.next_sample = self.t0 + self.cfg.sample_period
        self._window_sim_ns = self.driver.get_clock().now().nanoseconds
        seed = self.cfg.first_seed
        try:
            while time.monotonic() < self.end:
                self._episode(seed)
                seed += 1
        except (RuntimeError, TimeoutError) as err:  # StackDiedError included
            self.problems.append(Check('run', False, f'stopped at minute {self._minute():.1f}: {err}'))
        return self._judge()

    def _episode(self, seed: int) -> None:
        reset = call_service(self.driver.reset_client, ResetSim.Request(seed=seed))
        if not reset.success:
            raise RuntimeError(f'sim/reset failed: {reset.message}')
        self.judge.episode_started(self._sim_line, stamp_to_ns(reset.stamp))
        self._set_policy_active(True)
        while not self._poll():
            pass
        self._set_policy_active(False)

    def _set_policy_active(self, active: bool) -> None:
        # Runs split the command stream for the rate, which counts intervals within one; the hold starts its own.
        # Labelled on arrival: a tick in flight across a transition may count one interval wrong, nothing more.
        self.driver.run_id += 1
        self.driver.transition(Transition.TRANSITION_ACTIVATE if active else Transition.TRANSITION_DEACTIVATE)

    def _poll(self) -> bool:
        """One main-loop step while the policy is active; True when the episode is over."""
        time.sleep(POLL_S)
        self._drain()
        self._check_processes()
        now = time.monotonic()
        if self.cfg.kill_sim_at is not None and self.fault is None and now >= self.t0 + 60.0 * self.cfg.kill_sim_at:
            self._kill_sim()
        if now >= self.next_sample or now >= self.end:  # the last sample too while active (inference thread)
            self._sample()
            self.next_sample += self.cfg.sample_period * max(
                1, int((now - self.next_sample) // self.cfg.sample_period) + 1
            )
        if now >= self.end:
            return True
        try:
            status = call_service(self.driver.status_client, GetTaskStatus.Request(), timeout=STATUS_TIMEOUT_S)
        except TimeoutError:
            return False  # the sim is down or busy: the fault step, or a loaded machine
        if status.success or status.episode_time >= self.cfg.episode_time:
            self.episodes += 1
            self.successes += int(status.success)
            return True
        return False

    def _check_processes(self) -> None:
        for name, process in self.processes.items():
            if not process.alive and name != self._expected_down:
                raise StackDiedError(f'{name} exited with code {process.proc.returncode} (see {process.log_path})')

    def _kill_sim(self) -> None:
        """SIGKILL the sim bridge and start it again; the policy node stays active throughout."""
        sim = self.processes[self._name_of(SIM)]
        # Nothing of the new sim exists yet: the current time line of /clock and of the stamps is the killed sim's.
        self.fault = FaultRecord(killed_at=self._t(), line=self._sim_line)
        self._sim_line += 1
        self.driver.run_id += 1
        self._expected_down = sim.name
        sim.kill()
        self.log(f'soak: SIGKILLed {sim.name} (pid {sim.proc.pid}) at minute {self._minute():.2f}; restarting it')
        time.sleep(POLL_S)  # let anything the dead process had in flight arrive before watching for new input
        self.driver.watch_inputs()
        sim.start()
        self._expected_down = None

    def _name_of(self, executable: str) -> str:
        return next(name for name, p in self.processes.items() if p.spec.executable == executable)

    def _t(self, wall: float | None = None) -> float:
        return (time.monotonic() if wall is None else wall) - self.t0

    def _minute(self) -> float:
        return self._t() / 60.0

    # ---- checks and samples -----------------------------------------------------------------

    def _drain(self, final: bool = False) -> None:
        """Time the commands received since the last call and count the chunks.

        Commands are judged in order once the measurements they are judged against have arrived (at the end: all).
        """
        commands, measured, chunks = self.driver.take()
        self._window_chunks += [seconds for _, seconds in chunks]
        if self.fault is not None and self.fault.inputs_back_at is None and self.driver.inputs_back_at is not None:
            self.fault.inputs_back_at = self._t(self.driver.inputs_back_at)
        for state in measured:
            self.judge.measured.add(state.line, state.stamp_ns, self._in_joint_order(state.names, state.values))
        for command in commands:
            line = self.command_lines.add(command.stamp_ns)
            self._time_command(command, line)
            self._pending.append((command, line))
        while self._pending and (final or self.judge.ready(self._pending[0][1], self._pending[0][0].stamp_ns)):
            self._check_command(*self._pending.popleft())

    def _check_command(self, command: _Command, line: int) -> None:
        values = self._in_joint_order(command.names, command.values)
        problem, previous, measured = self.judge.judge(line, command.stamp_ns, values)
        self.commands += 1
        if problem is not None:
            self.bad[problem] += 1
            self.log(
                f'soak: {problem} command at minute {self._t(command.wall) / 60:.2f} (stamp '
                f'{command.stamp_ns / NS_PER_S:.3f} s): {_rounded(values)} (measured then {_rounded(measured)}, '
                f'previous {_rounded(previous)})'
            )
        if self.fault is not None:
            self.fault.on_command(self._t(command.wall), line, values, measured, self.judge.limits)

    def _time_command(self, command: _Command, line: int) -> None:
        """Count the interval from the previous command of the same run and time line, on the node clock."""
        previous = self._previous_stamp
        if previous is not None and previous[:2] == (command.run, line):
            seconds = (command.stamp_ns - previous[2]) / NS_PER_S
            self.total_rate.add(seconds)
            self.window_rate.add(seconds)
        if self.fault is not None:
            self.fault.on_stamp(line, command.stamp_ns)
        self._previous_stamp = (command.run, line, command.stamp_ns)

    def _in_joint_order(self, names: tuple[str, ...], positions: np.ndarray) -> np.ndarray:
        """Positions in the robot profile's joint order; a missing joint is NaN (judged as a bad command)."""
        index = {name: i for i, name in enumerate(names)}
        return np.array(
            [
                positions[index[j]] if j in index and index[j] < len(positions) else np.nan
                for j in self.robot.joint_names
            ]
        )

    def _sample(self) -> None:
        now_ns = self.driver.get_clock().now().nanoseconds
        sim_s = (now_ns - self._window_sim_ns) / NS_PER_S  # negative across a sim restart: no rate then
        processes = {}
        for name, process in self.processes.items():
            try:
                stats = read_process_stats(process.proc.pid)
            except OSError:
                continue
            processes[name] = ProcessSample(
                process.proc.pid,
                round(time.monotonic() - process.started_at, 1),
                stats.rss_kb,
                stats.threads,
                stats.fds,
            )
        engine = self._window_chunks
        sample = Sample(
            t_s=round(self._t(), 1),
            processes=processes,
            command_rate_hz=self.window_rate.rate(),
            chunk_rate_hz=len(engine) / sim_s if sim_s > 0 else None,
            engine_p99_ms=float(np.percentile(engine, 99) * 1e3) if engine else None,
            stale_events=self.driver.stale_events,
            episodes=self.episodes,
            successes=self.successes,
            bad_commands=sum(self.bad.values()),
        )
        self.samples.append(sample)
        self.log(table_row(sample, self.names))
        self.window_rate, self._window_chunks, self._window_sim_ns = self._rate_counter(), [], now_ns

    def _rate_counter(self) -> RateCounter:
        """Return a counter of command intervals at the node's control period."""
        return RateCounter(1.0 / self.control_rate)

    def _judge(self) -> SoakResult:
        self._drain(final=True)
        checks = [
            *self.problems,
            *resource_checks(self.samples, self.names, self.goals),
            rate_check(self.total_rate, self.goals, self.driver.stale_events),
            command_check(self.bad, self.commands),
        ]
        if self.fault is not None:
            # Judged now: the killed sim's last /clock messages arrive when they arrive, as its last commands do.
            self.fault.last_clock_ns = self.driver.clock_end(self.fault.line)
            checks += fault_checks(self.fault)
        return SoakResult(
            self.samples, checks, self.control_rate, self.total_rate.rate(), self.commands, dict(self.bad), self.fault
        )


def _rounded(values: np.ndarray | None) -> list[float] | None:
    return None if values is None else np.round(values, 4).tolist()


def stack_specs(cfg: SoakConfig) -> list[NodeSpec]:
    """Return the sim bridge and the policy node of the runner file, with the soak's real-time factor.

    The policy node also sends each command as a stamped JointState, on a topic the sim does not read.
    """
    specs = [s for s in load_specs(cfg.stack) if s.executable in (SIM, POLICY)]
    if sorted(s.executable for s in specs) != sorted((SIM, POLICY)):
        raise ValueError(f'{cfg.stack} must list one {SIM} and one {POLICY}')
    for spec in specs:
        if spec.executable == SIM:
            spec.parameters['real_time_factor'] = cfg.real_time_factor
        else:
            spec.parameters['command_stream'] = 'both'
    return specs


def run_soak(cfg: SoakConfig, log: Any = print) -> SoakResult:
    """Start the stack, soak it, stop it, write samples.csv and soak.json to cfg.out; return the result."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    specs = stack_specs(cfg)
    processes = {p.name: p for p in (NodeProcess(spec, cfg.out) for spec in specs)}
    policy = next(s for s in specs if s.executable == POLICY)
    context = rclpy.Context()
    rclpy.init(context=context)
    driver = SoakDriver(policy.name or POLICY, namespace=policy.namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(driver)
    spinner = ExecutorThread(executor, name='soak_executor')
    try:
        for process in processes.values():
            process.start()
        spinner.start()
        result = Soak(cfg, driver, processes, log).run()
    finally:
        exit_codes = {name: process.stop() for name, process in processes.items()}
        spinner.stop()  # before destroying: a spinning executor still adds the node's entities
        driver.destroy_node()
        rclpy.try_shutdown(context=context)
    result.checks.append(exit_check(exit_codes))
    for check in result.checks:
        log(f'  {"ok  " if check.ok else "FAIL"} {check.name}: {check.detail}')
    log(result.verdict)
    write_outputs(cfg, result)
    return result


def write_outputs(cfg: SoakConfig, result: SoakResult) -> None:
    """samples.csv (one row per sample and process) and soak.json (configuration, samples, checks, verdict)."""
    with (cfg.out / 'samples.csv').open('w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                't_s',
                'process',
                'pid',
                'age_s',
                'rss_kb',
                'threads',
                'fds',
                'command_rate_hz',
                'chunk_rate_hz',
                'engine_p99_ms',
                'stale_events',
                'episodes',
                'successes',
                'bad_commands',
            ]
        )
        for s in result.samples:
            for name, p in s.processes.items():
                writer.writerow(
                    [
                        s.t_s,
                        name,
                        p.pid,
                        p.age_s,
                        p.rss_kb,
                        p.threads,
                        p.fds,
                        s.command_rate_hz,
                        s.chunk_rate_hz,
                        s.engine_p99_ms,
                        s.stale_events,
                        s.episodes,
                        s.successes,
                        s.bad_commands,
                    ]
                )
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    (cfg.out / 'soak.json').write_text(
        json.dumps(
            {
                'config': config,
                'control_rate': result.control_rate,
                'command_rate_hz': result.command_rate_hz,
                'commands': result.commands,
                'bad': result.bad,
                'samples': [asdict(s) for s in result.samples],
                'checks': [asdict(c) for c in result.checks],
                'fault': None if result.fault is None else asdict(result.fault),
                'verdict': result.verdict,
                'ok': result.ok,
            },
            indent=1,
            default=float,
        )
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: soak, print the table and the verdict; exit 0 on PASS, 1 on FAIL, 2 when it cannot start."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SoakConfig()
    parser.add_argument('--minutes', type=float, default=defaults.minutes, help='length of the soak (wall time)')
    parser.add_argument('--sample-period', type=float, default=defaults.sample_period, help='seconds between samples')
    parser.add_argument(
        '--warmup',
        type=float,
        default=defaults.warmup_minutes,
        help='minutes after a process starts before its growth is judged',
    )
    parser.add_argument('--out', type=Path, default=defaults.out, help='folder for samples.csv, soak.json and logs')
    parser.add_argument(
        '--kill-sim-at',
        type=float,
        default=None,
        metavar='MINUTE',
        help='SIGKILL the sim bridge at this minute, restart it, and check the policy holds',
    )
    parser.add_argument('--stack', type=Path, default=defaults.stack, help='runner YAML naming the nodes')
    parser.add_argument('--real-time-factor', type=float, default=defaults.real_time_factor)
    parser.add_argument(
        '--episode-time',
        type=float,
        default=defaults.episode_time,
        help='sim seconds before an episode is given up and the sim reset',
    )
    args = parser.parse_args(argv)
    try:
        cfg = SoakConfig(
            minutes=args.minutes,
            sample_period=args.sample_period,
            warmup_minutes=args.warmup,
            out=args.out,
            kill_sim_at=args.kill_sim_at,
            stack=args.stack,
            real_time_factor=args.real_time_factor,
            episode_time=args.episode_time,
        )
    except ValueError as err:
        parser.error(str(err))
    try:
        result = run_soak(cfg)
    except (RuntimeError, ValueError) as err:  # the stack did not come up as the runner file says
        parser.exit(2, f'soak: {err}\n')
    sys.exit(0 if result.ok else 1)


if __name__ == '__main__':
    main()
