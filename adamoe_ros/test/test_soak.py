"""The soak test: its verdict machinery on synthetic series, and short real soaks of the two-process stack."""

from pathlib import Path

import numpy as np
import pytest

from adamoe_ros.tools.proc_stats import read_process_stats
from adamoe_ros.tools.soak import SoakConfig, run_soak
from adamoe_ros.tools.soak_checks import (
    CommandJudge,
    CommandLimits,
    FaultRecord,
    Goals,
    ProcessSample,
    RateCounter,
    Sample,
    TimeLines,
    command_check,
    command_problem,
    exit_check,
    fault_checks,
    rate_check,
    resource_checks,
    verdict_line,
)

LIMITS = CommandLimits.at_rate([-1.0, -2.0], [1.0, 2.0], [2.0], control_rate=10.0)  # 0.2 rad per step
GOALS = Goals(warmup_s=60.0)


def series(
    rss: list[int],
    threads: list[int] | None = None,
    fds: list[int] | None = None,
    pid: int = 7,
    start_s: float = 0.0,
    period_s: float = 30.0,
) -> list[ProcessSample]:
    n = len(rss)
    return [
        ProcessSample(pid, start_s + i * period_s, rss[i], (threads or [10] * n)[i], (fds or [20] * n)[i])
        for i in range(n)
    ]


def samples_of(**processes: list[ProcessSample]) -> list[Sample]:
    n = max(len(s) for s in processes.values())
    return [
        Sample(
            t_s=30.0 * i,
            processes={name: s[i] for name, s in processes.items() if i < len(s)},
            command_rate_hz=10.0,
            chunk_rate_hz=1.0,
            engine_p99_ms=20.0,
            stale_events=0,
            episodes=i,
            successes=i,
            bad_commands=0,
        )
        for i in range(n)
    ]


def failed(checks) -> set[str]:
    return {c.name for c in checks if not c.ok}


def counter_at(rate_hz: float, seconds: float = 100.0) -> RateCounter:
    return RateCounter(0.1, intervals=round(rate_hz * seconds), seconds=seconds)


# ---- commands -----------------------------------------------------------------------------


def test_command_problem_classifies_each_kind():
    previous, measured = np.array([0.0, 0.0]), np.array([0.5, 0.5])
    assert command_problem(np.array([0.2, -0.2]), LIMITS, previous, measured) is None  # exactly one step
    assert command_problem(np.array([0.6, 0.4]), LIMITS, previous, measured) is None  # near the robot
    assert command_problem(np.array([0.21, 0.0]), LIMITS, previous, None) == 'jump'
    assert command_problem(np.array([-0.5, 0.0]), LIMITS, previous, measured) == 'jump'
    assert command_problem(np.array([np.nan, 0.0]), LIMITS, previous, measured) == 'nan'
    assert command_problem(np.array([0.0, 0.0, 0.0]), LIMITS, previous, measured) == 'nan'
    assert command_problem(np.array([1.0 + 1e-6, 0.0]), LIMITS, np.array([1.0, 0.0]), None) == 'out_of_limit'
    assert command_problem(np.array([0.1, 0.1]), LIMITS, None, None) == 'jump'  # nothing shows it is safe


def test_judge_uses_the_position_measured_at_the_stamp_and_waits_until_it_has_arrived():
    judge = CommandJudge(LIMITS)
    judge.measured.add(0, 100, np.array([0.0, 0.0]))
    assert not judge.ready(0, 150)  # the measurement the node may have used at 150 could still be on its way
    judge.measured.add(0, 200, np.array([0.5, 0.0]))  # the arm moved on before the driver judged
    assert judge.ready(0, 150)
    # Judged on arrival (measured 0.5) this hold would be a jump; at its stamp the robot was at 0.0.
    assert judge.judge(0, 150, np.array([0.05, 0.0]))[0] is None
    assert judge.judge(0, 210, np.array([0.9, 0.0]))[0] == 'jump'  # neither near 0.05 nor near 0.5


def test_a_sim_reset_ends_the_previous_command_s_claim_at_its_stamp():
    judge = CommandJudge(LIMITS)
    judge.measured.add(0, 100, np.array([0.8, 0.0]))
    assert judge.judge(0, 100, np.array([0.7, 0.0]))[0] is None  # last tick: near the robot
    judge.measured.add(0, 120, np.array([0.75, 0.0]))
    judge.episode_started(0, 130)
    judge.measured.add(0, 130, np.array([0.0, 0.0]))  # the reset pose
    assert judge.judge(0, 110, np.array([0.75, 0.0]))[0] is None  # the hold, arriving after the reset
    assert judge.judge(0, 200, np.array([0.7, 0.0]))[0] == 'jump'  # near the old episode only
    assert judge.judge(0, 300, np.array([0.1, 0.0]))[0] is None  # ramps from the reset pose
    assert judge.judge(1, 10, np.array([0.2, 0.0]))[0] == 'jump'  # a restarted sim: no previous, nothing measured


def test_command_check_needs_commands_and_no_bad_one():
    assert command_check({'nan': 0, 'out_of_limit': 0, 'jump': 0}, 100).ok
    assert not command_check({'nan': 0, 'out_of_limit': 0, 'jump': 0}, 0).ok
    assert not command_check({'nan': 0, 'out_of_limit': 1, 'jump': 0}, 100).ok


def test_rate_counter_and_rate_check():
    counter = RateCounter(0.1)
    assert counter.rate() is None
    for _ in range(98):
        counter.add(0.1)
    counter.add(0.2)  # two missed control ticks in 102: 2% slow
    counter.add(0.2)
    assert counter.rate() == pytest.approx(100 / 10.2)
    slow = rate_check(counter, GOALS, stale_events=1)
    assert not slow.ok and slow.detail.endswith('2 of 102 control ticks without a command, 1 stale events')
    assert rate_check(counter_at(9.95), GOALS, 0).ok and rate_check(counter_at(10.09), GOALS, 0).ok
    assert not rate_check(RateCounter(0.1), GOALS, 0).ok


def test_rate_counter_counts_no_missed_tick_for_intervals_a_clock_step_off():
    # A timer on the sim clock fires on its 20 ms steps: an interval a step long is followed by one a step short.
    counter = RateCounter(0.1)
    for _ in range(50):
        counter.add(0.08)
        counter.add(0.12)
    counter.add(0.08)  # a run that ends a step short: its total rounds to one tick fewer than its intervals
    assert counter.skipped == 0
    detail = rate_check(counter, GOALS, 0).detail
    assert detail.endswith('0 of 101 control ticks without a command, 0 stale events')


def test_time_lines_start_again_where_a_restarted_sim_clock_steps_back():
    lines = TimeLines()
    assert [lines.add(ns) for ns in (5, 7, 7, 9, 2, 3)] == [0, 0, 0, 0, 1, 1]
    assert lines.ends == [9, 3]


# ---- resources ----------------------------------------------------------------------------


def test_flat_series_pass_and_growth_after_warmup_fails():
    flat = series([100_000] * 10)
    leaking = series([100_000 + 1_000 * i for i in range(10)])  # +7% from the first judged sample
    assert not failed(resource_checks(samples_of(a=flat), ['a'], GOALS))
    assert failed(resource_checks(samples_of(a=flat, b=leaking), ['a', 'b'], GOALS)) == {'b RSS'}
    slow = series([100_000 + 400 * i for i in range(10)])  # +3.5%: under the 5% goal
    assert not failed(resource_checks(samples_of(a=slow), ['a'], GOALS))


def test_growth_during_warmup_is_not_judged():
    warming = series(
        [50_000, 80_000, 100_000, 100_000, 100_000, 100_000],
        threads=[5, 9, 10, 10, 10, 10],
        fds=[3, 15, 20, 20, 20, 20],
    )
    assert not failed(resource_checks(samples_of(a=warming), ['a'], GOALS))


def test_thread_and_descriptor_growth_fail():
    threads = series([100_000] * 6, threads=[10, 10, 10, 11, 11, 12])
    fds = series([100_000] * 6, fds=[20, 20, 21, 22, 23, 24])
    assert failed(resource_checks(samples_of(a=threads, b=fds), ['a', 'b'], GOALS)) == {'a threads', 'b fds'}
    fewer = series([100_000] * 6, threads=[12, 12, 11, 11, 10, 10])
    assert not failed(resource_checks(samples_of(a=fewer), ['a'], GOALS))


def test_a_restarted_process_is_judged_on_its_new_pid_from_its_own_warmup():
    before = series([100_000] * 4, pid=1)
    after = series([60_000, 90_000, 100_000, 100_000], pid=2, start_s=0.0)  # grew only while warming up
    assert not failed(resource_checks(samples_of(a=before + after), ['a'], GOALS))
    short = series([100_000] * 4, pid=1) + series([100_000, 100_000], pid=2)
    assert failed(resource_checks(samples_of(a=short), ['a'], GOALS)) == {'a samples'}


def test_a_process_without_samples_fails():
    assert failed(resource_checks(samples_of(a=series([1] * 5)), ['a', 'missing'], GOALS)) == {'missing samples'}


# ---- the sim-kill fault -------------------------------------------------------------------


def test_fault_record_hold_and_resume():
    measured = np.array([0.0, 0.0])
    record = FaultRecord(killed_at=100.0, line=0, last_clock_ns=42_000_000_000)
    record.on_stamp(0, 42_000_000_000)  # ticked on the killed sim's last /clock, however late it arrived
    record.on_stamp(1, 300_000_000)  # the restarted sim's time line
    assert record.commands_while_down == 0
    record.inputs_back_at = 104.0
    record.on_command(103.9, 0, np.array([0.3, 0.0]), measured, LIMITS)  # the killed sim's line: not the resume
    record.on_command(104.5, 1, np.array([0.1, 0.1]), measured, LIMITS)
    record.on_command(104.6, 1, np.array([0.3, 0.1]), measured, LIMITS)  # only the first one is the resume
    assert [c.ok for c in fault_checks(record)] == [True, True]
    assert record.resumed_at == 104.5 and record.resume_step == pytest.approx(0.5)


def test_fault_record_catches_commands_while_down_and_a_jump_on_resume():
    record = FaultRecord(killed_at=100.0, line=0, last_clock_ns=42_000_000_000)
    record.on_stamp(0, 42_100_000_000)  # a tick the killed sim's clock never reached
    record.inputs_back_at = 104.0
    record.on_command(104.2, 1, np.array([0.9, 0.0]), np.array([0.0, 0.0]), LIMITS)  # from the old command
    hold, resume = fault_checks(record)
    assert not hold.ok and not resume.ok and '4.50 x' in resume.detail
    never = FaultRecord(killed_at=100.0, line=0, last_clock_ns=42_000_000_000, inputs_back_at=104.0)
    assert [c.ok for c in fault_checks(never)] == [True, False]


def test_exit_check():
    assert exit_check({'a': 0, 'b': 0}).ok
    assert not exit_check({'a': 0, 'b': -9}).ok and not exit_check({'a': None}).ok


def test_verdict_line():
    checks = resource_checks(samples_of(a=series([100_000] * 5)), ['a'], GOALS)
    assert verdict_line(checks).startswith('soak verdict: PASS')
    bad = [*checks, rate_check(counter_at(9.0), GOALS, 0)]
    assert verdict_line(bad).startswith('soak verdict: FAIL (1 of 4 checks): command rate: 9.000 Hz')


def test_config_refuses_settings_without_a_verdict():
    with pytest.raises(ValueError, match='warm-up'):
        SoakConfig(minutes=2, warmup_minutes=5)
    with pytest.raises(ValueError, match='kill-sim-at'):
        SoakConfig(minutes=2, warmup_minutes=1, kill_sim_at=3)


def test_read_process_stats_of_this_process():
    stats = read_process_stats(__import__('os').getpid())
    assert stats.rss_kb > 10_000 and stats.threads >= 1 and stats.fds >= 3


# ---- real soaks ---------------------------------------------------------------------------


@pytest.mark.slow
def test_one_minute_soak_samples_both_processes_and_passes_all_but_the_rate_goal(tmp_path: Path):
    result = run_soak(SoakConfig(minutes=1.0, sample_period=10.0, warmup_minutes=0.25, out=tmp_path))
    assert len(result.samples) >= 5
    assert all(set(s.processes) == {'sim_bridge', 'policy_node'} for s in result.samples)
    assert result.commands > 0 and not any(result.bad.values()), result.bad
    # The rate goal is the idle machine's: on a loaded one the node's timer skips the ticks its late /clock jumped
    # over, which the node does not count. The soak reports the rate with the ticks it missed and the stale events.
    assert result.command_rate_hz is not None, result.verdict  # measured on the stamps of the node clock
    assert not failed(result.checks) - {'command rate'}, result.verdict
    assert (tmp_path / 'samples.csv').is_file() and (tmp_path / 'soak.json').is_file()


@pytest.mark.slow
def test_sim_kill_policy_holds_and_resumes_from_the_measured_position(tmp_path: Path):
    result = run_soak(SoakConfig(minutes=1.0, sample_period=10.0, warmup_minutes=0.25, kill_sim_at=0.3, out=tmp_path))
    assert not [c for c in result.checks if c.name == 'run'], result.verdict  # the soak ran to its end
    fault = result.fault
    assert fault is not None and fault.inputs_back_at is not None, fault
    assert fault.last_clock_ns > 0 and fault.commands_while_down == 0, fault
    assert fault.resumed_at is not None, fault
    # The restarted sim's /clock starts again at 0: the node must resume from the measured position.
    assert fault.resume_step_ok, f'resumed {fault.resume_step:.1f} x the allowed step from the robot'
    assert not any(result.bad.values()), result.bad
