"""What the soak test judges: every command against the robot's limits, and the verdict over the run's samples.

Plain records and functions without ROS, so the verdict machinery is tested on synthetic series.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

BAD_KINDS = ('nan', 'out_of_limit', 'jump')


@dataclass(frozen=True)
class CommandLimits:
    """A safe command is finite, inside [lower, upper] and at most max_step from the last command or the robot."""

    lower: np.ndarray
    upper: np.ndarray
    max_step: np.ndarray  # rad per control period: max_joint_velocity / control_rate
    # The node clamps in float64, so its steps land on a limit up to rounding.
    tolerance: float = 1e-9
    # The node steps from its own newest joint_states sample, which may be one sample (20 ms) older than ours.
    measured_tolerance: float = 0.01

    @classmethod
    def at_rate(
        cls, lower: Sequence[float], upper: Sequence[float], max_velocity: Sequence[float], control_rate: float
    ) -> CommandLimits:
        """Limits of a robot (max_velocity: one value for all joints or one per joint) at a control rate."""
        lower_arr = np.asarray(lower, dtype=np.float64)
        velocity = np.broadcast_to(np.asarray(max_velocity, dtype=np.float64), lower_arr.shape)
        return cls(lower_arr, np.asarray(upper, dtype=np.float64), velocity / control_rate)

    def near(self, command: np.ndarray, reference: np.ndarray, tolerance: float) -> bool:
        """Whether every joint of command is within one allowed step (plus tolerance) of reference."""
        return bool(np.all(np.abs(command - reference) <= self.max_step + tolerance))


def command_problem(
    command: np.ndarray, limits: CommandLimits, previous: np.ndarray | None, measured: np.ndarray | None
) -> str | None:
    """Classify a command as 'nan', 'out_of_limit' or 'jump'; None when it is safe.

    'nan' also covers a vector of the wrong length. A step is safe when it is within the velocity limit of the
    previous command (the node's reference while commanding) or of the measured position (its reference when
    it starts, resumes or holds).
    """
    command = np.asarray(command, dtype=np.float64)
    if command.shape != limits.lower.shape or not np.all(np.isfinite(command)):
        return 'nan'
    if np.any(command < limits.lower - limits.tolerance) or np.any(command > limits.upper + limits.tolerance):
        return 'out_of_limit'
    if previous is not None and limits.near(command, previous, limits.tolerance):
        return None
    if measured is not None and limits.near(command, measured, limits.measured_tolerance):
        return None
    return 'jump'


class MeasuredHistory:
    """The robot's measured positions by stamp on each time line of the sim clock: where it was at a node-clock time."""

    def __init__(self) -> None:
        """Nothing measured yet."""
        self._lines: dict[int, tuple[list[int], list[np.ndarray]]] = {}

    def add(self, line: int, stamp_ns: int, positions: np.ndarray) -> None:
        """Record a measurement; one stamped before the newest of its line (reordered) is dropped."""
        stamps, values = self._lines.setdefault(line, ([], []))
        if not stamps or stamp_ns >= stamps[-1]:
            stamps.append(stamp_ns)
            values.append(positions)

    def covers(self, line: int, stamp_ns: int) -> bool:
        """Whether every measurement up to stamp_ns on `line` has arrived: a later one of it, or of a later line."""
        stamps = self._lines.get(line, ([], []))[0]
        return bool(stamps and stamps[-1] >= stamp_ns) or any(other > line for other in self._lines)

    def at(self, line: int, stamp_ns: int) -> np.ndarray | None:
        """Return the newest measurement at or before stamp_ns on `line`; None before its first one."""
        stamps, values = self._lines.get(line, ([], []))
        index = bisect.bisect_right(stamps, stamp_ns) - 1
        return values[index] if index >= 0 else None

    def forget_before(self, line: int, stamp_ns: int) -> None:
        """Drop what no command stamped at or after stamp_ns on `line` can need (keeps memory flat in a soak)."""
        stamps, values = self._lines.get(line, ([], []))
        keep = max(bisect.bisect_right(stamps, stamp_ns) - 1, 0)
        del stamps[:keep], values[:keep]


class CommandJudge:
    """Judges each command against what the robot had when the node sent it, on the node clock (the sim's /clock).

    Its references are the previous command of the same episode and time line, and the position measured at or
    before its stamp. Judged by stamp, not on arrival: a command that arrives late (a hold sent on deactivation,
    a tick sent while the driver asked for it) is judged against where the robot was when it was sent, and a
    sim reset (which moves the robot) ends the previous command's claim exactly at the reset's stamp.
    """

    def __init__(self, limits: CommandLimits) -> None:
        """Judge against `limits`; measurements and episode starts come in as the soak receives them."""
        self.limits = limits
        self.measured = MeasuredHistory()
        self._episode_starts: list[tuple[int, int]] = []  # (time line, stamp) of each sim reset
        self._previous: tuple[int, int, np.ndarray] | None = None  # (time line, stamp, values) of the last command

    def episode_started(self, line: int, stamp_ns: int) -> None:
        """Record a sim reset on time line `line`: its episode starts at stamp_ns."""
        self._episode_starts.append((line, stamp_ns))

    def ready(self, line: int, stamp_ns: int) -> bool:
        """Whether the measurements a command stamped stamp_ns on `line` is judged against have all arrived."""
        return self.measured.covers(line, stamp_ns)

    def judge(
        self, line: int, stamp_ns: int, values: np.ndarray
    ) -> tuple[str | None, np.ndarray | None, np.ndarray | None]:
        """Return (problem or None, the previous command it was judged against, the measured position)."""
        previous = None
        if self._previous is not None:
            prev_line, prev_stamp, prev_values = self._previous
            reset_between = any(on == line and prev_stamp < at <= stamp_ns for on, at in self._episode_starts)
            if prev_line == line and not reset_between:
                previous = prev_values
        measured = self.measured.at(line, stamp_ns)
        self._previous = (line, stamp_ns, values)
        self.measured.forget_before(line, stamp_ns)
        return command_problem(values, self.limits, previous, measured), previous, measured


@dataclass
class RateCounter:
    """Intervals between consecutive commands of one uninterrupted run, in seconds of the node's clock."""

    period_s: float  # the node's control period
    intervals: int = 0
    seconds: float = 0.0
    skipped: int = 0  # control ticks that sent no command

    def add(self, seconds: float) -> None:
        """Count one interval between two commands, and the control ticks it left out.

        Per interval, not from the total: a timer on the sim clock fires on the clock's 20 ms steps, so single
        intervals run a step long or short, and the total's rounding once reported -1 ticks without a command.
        """
        self.intervals += 1
        self.seconds += seconds
        self.skipped += max(round(seconds / self.period_s) - 1, 0)

    def rate(self) -> float | None:
        """Commands per second, None before the first interval."""
        return self.intervals / self.seconds if self.seconds > 0 else None


@dataclass
class TimeLines:
    """The newest time (ns) of each time line of the sim clock, the last one current.

    Sim resets keep /clock increasing; a restarted sim's /clock starts again from 0, which starts a new time line.
    """

    ends: list[int] = field(default_factory=lambda: [0])

    def add(self, ns: int) -> int:
        """Record a time and return the index of its time line."""
        if ns < self.ends[-1]:
            self.ends.append(ns)
        else:
            self.ends[-1] = ns
        return len(self.ends) - 1


@dataclass
class FaultRecord:
    """Whether the policy held while the SIGKILLed sim bridge was down, and how it resumed.

    Holding is judged on the node clock, the sim's /clock, by the stamps of the commands: that clock stood still at
    the killed sim's last /clock until the restarted sim's /clock began a new time line. A command of the killed
    sim's time line stamped later was sent on inputs no sim produced. One stamped up to it was sent while the sim
    ran, however late it arrives: a node behind on a loaded machine still ticks through /clock sent before the kill.
    Resuming is judged on the restarted sim's time line: its first command against the position measured at its
    stamp; how long it took is in wall seconds since the soak started, from the restarted sim's first joint states
    reaching the driver to that command arriving.
    """

    killed_at: float
    line: int  # time line the killed sim drove
    stamps: list[int] = field(default_factory=list)  # of that line's commands seen from the kill on (ns)
    last_clock_ns: int = 0  # the killed sim's last /clock, known once its last messages have arrived
    inputs_back_at: float | None = None
    resumed_at: float | None = None
    resume_step_ok: bool = False
    resume_step: float = math.nan  # largest |command - measured| / allowed step of the first command after

    @property
    def commands_while_down(self) -> int:
        """Commands of the killed sim's time line stamped after its last /clock."""
        return sum(stamp > self.last_clock_ns for stamp in self.stamps)

    def on_stamp(self, line: int, stamp_ns: int) -> None:
        """Account one command stamped stamp_ns on time line `line`, received after the kill."""
        if line == self.line:
            self.stamps.append(stamp_ns)

    def on_command(
        self, t_s: float, line: int, command: np.ndarray, measured: np.ndarray | None, limits: CommandLimits
    ) -> None:
        """Account one command of time line `line` received at t_s, with the position measured at its stamp.

        The first one on a line after the killed sim's is the resume.
        """
        if line <= self.line or self.resumed_at is not None:
            return
        self.resumed_at = t_s
        if measured is not None:
            self.resume_step = float(np.max(np.abs(command - measured) / limits.max_step))
            self.resume_step_ok = limits.near(command, measured, limits.measured_tolerance)


@dataclass(frozen=True)
class ProcessSample:
    """Resources of one stack process at one sample."""

    pid: int
    age_s: float  # wall seconds since the soak started this process
    rss_kb: int
    threads: int
    fds: int


@dataclass(frozen=True)
class Sample:
    """One row of the soak table; rates are per second of sim time over the window since the previous row."""

    t_s: float
    processes: dict[str, ProcessSample]
    command_rate_hz: float | None
    chunk_rate_hz: float | None
    engine_p99_ms: float | None
    stale_events: int
    episodes: int
    successes: int
    bad_commands: int


@dataclass(frozen=True)
class Goals:
    """Pass marks of the soak (issue 12): growth is judged from warmup_s after each process started."""

    warmup_s: float = 300.0
    max_rss_growth: float = 0.05
    rate_tolerance: float = 0.01


@dataclass(frozen=True)
class Check:
    """One judged goal."""

    name: str
    ok: bool
    detail: str


def resource_checks(samples: list[Sample], names: list[str], goals: Goals) -> list[Check]:
    """Check RSS growth is below the goal and threads and descriptors do not grow after the warm-up.

    A restarted process is judged on its newest pid only, from goals.warmup_s after it started.
    """
    checks = []
    for name in names:
        series = [s.processes[name] for s in samples if name in s.processes]
        judged = [p for p in series if p.pid == series[-1].pid and p.age_s >= goals.warmup_s]
        if len(judged) < 2:
            checks.append(
                Check(
                    f'{name} samples', False, f'{len(judged)} samples from {goals.warmup_s:.0f} s after start; need 2'
                )
            )
            continue
        first, last = judged[0], judged[-1]
        growth = last.rss_kb / first.rss_kb - 1.0
        checks += [
            Check(
                f'{name} RSS',
                growth < goals.max_rss_growth,
                f'{first.rss_kb / 1024:.1f} -> {last.rss_kb / 1024:.1f} MB ({growth:+.1%}; goal < '
                f'{goals.max_rss_growth:.0%})',
            ),
            Check(f'{name} threads', last.threads <= first.threads, f'{first.threads} -> {last.threads}'),
            Check(f'{name} fds', last.fds <= first.fds, f'{first.fds} -> {last.fds}'),
        ]
    return checks


def rate_check(counter: RateCounter, goals: Goals, stale_events: int) -> Check:
    """Check the command rate over the soak is within goals.rate_tolerance of the node's control rate.

    The control rate is the counter's: one period counts both the missed ticks and the rate they are held against.

    A goal for an otherwise idle machine. The detail says what fell short: control ticks without a command, and
    the node's stale events, each of which stops commanding until the inputs are fresh and a chunk is planned.
    Other missing ticks the node does not count: ticks its timer skipped because /clock reached it late (the timer
    runs once for all the periods its clock jumped over, on a loaded machine), or a fault.
    """
    rate_hz = counter.rate()
    if rate_hz is None:
        return Check('command rate', False, 'no two consecutive commands seen')
    control_rate = 1.0 / counter.period_s
    error = rate_hz / control_rate - 1.0
    ticks = counter.intervals + counter.skipped
    return Check(
        'command rate',
        abs(error) <= goals.rate_tolerance,
        f'{rate_hz:.3f} Hz against control_rate {control_rate:g} Hz ({error:+.2%}; goal within '
        f'{goals.rate_tolerance:.0%}): {counter.skipped} of {ticks} control ticks without a command, '
        f'{stale_events} stale events',
    )


def command_check(bad: dict[str, int], total: int) -> Check:
    """Check commands were seen and none was NaN, out of limits or a jump."""
    return Check(
        'commands',
        total > 0 and not any(bad.values()),
        f'{total} checked: ' + ', '.join(f'{bad.get(kind, 0)} {kind}' for kind in BAD_KINDS),
    )


def exit_check(exit_codes: dict[str, int | None]) -> Check:
    """Check every process exited with 0 when asked to stop (SIGINT) at the end."""
    return Check(
        'clean exit',
        all(code == 0 for code in exit_codes.values()),
        ', '.join(f'{name} {code}' for name, code in exit_codes.items()),
    )


def fault_checks(record: FaultRecord) -> list[Check]:
    """Check the policy sent nothing on stale inputs and its first command afterwards stepped from the robot."""
    hold = Check(
        'sim kill: hold',
        record.commands_while_down == 0,
        f"{record.commands_while_down} of the {len(record.stamps)} commands of the killed sim's time line seen after "
        f'the kill stamped after its last /clock ({record.last_clock_ns / 1e9:.2f} s)',
    )
    if record.inputs_back_at is None:
        return [hold, Check('sim kill: resume', False, 'the restarted sim never published joint states')]
    if record.resumed_at is None:
        return [hold, Check('sim kill: resume', False, 'no command after the restarted sim published')]
    return [
        hold,
        Check(
            'sim kill: resume',
            record.resume_step_ok,
            f'first command {record.resumed_at - record.inputs_back_at:.1f} s after inputs came back, '
            f'{record.resume_step:.2f} x the allowed step from the measured position',
        ),
    ]


def verdict_line(checks: list[Check]) -> str:
    """One line: PASS, or FAIL with each failed check."""
    failed = [c for c in checks if not c.ok]
    if not failed:
        return f'soak verdict: PASS ({len(checks)} checks)'
    return f'soak verdict: FAIL ({len(failed)} of {len(checks)} checks): ' + '; '.join(
        f'{c.name}: {c.detail}' for c in failed
    )


def table_header(names: list[str]) -> str:
    """Column titles of the soak table."""
    cells = ['t min'] + [f'{name} RSS MB/thr/fd'.rjust(24) for name in names]
    return '  '.join(cells + ['cmd Hz', 'chunk Hz', 'p99 ms', 'stale', 'episodes', 'bad'])


def table_row(sample: Sample, names: list[str]) -> str:
    """One sample as a row under table_header."""

    def number(value: float | None, width: int, digits: int) -> str:
        return ('-' if value is None else f'{value:.{digits}f}').rjust(width)

    cells = [f'{sample.t_s / 60:5.1f}']
    for name in names:
        p = sample.processes.get(name)
        text = '-' if p is None else f'{p.rss_kb / 1024:.1f}/{p.threads}/{p.fds}'
        cells.append(text.rjust(24))
    cells += [
        number(sample.command_rate_hz, 6, 2),
        number(sample.chunk_rate_hz, 8, 2),
        number(sample.engine_p99_ms, 6, 1),
        str(sample.stale_events).rjust(5),
        f'{sample.successes}/{sample.episodes}'.rjust(8),
        str(sample.bad_commands).rjust(3),
    ]
    return '  '.join(cells)
