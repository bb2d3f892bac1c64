"""Execution modes on the real engine: rtc conditions each new chunk on the actions still queued, so
consecutive chunks agree on their overlap far better than independent (latest) chunks do.

These tests run an UNTRAINED bundle: its independent chunks disagree a lot, so the pull of the guidance is plain to
see; a trained policy's consecutive chunks already agree, which says nothing about the guidance."""

from pathlib import Path

import numpy as np
from test_policy_support import Harness, policy_overrides, start_inputs

from adamoe_ros.ros_env import stamp_to_ns

UNTRAINED = Path(__file__).parent / 'fixtures' / 'untrained_so101'


def overlap_disagreement(chunks: list, steps: int = 4) -> float:
    """Mean |new - old| over the first steps of each chunk, the old chunk interpolated at the new times."""
    errors = []
    for old, new in zip(chunks, chunks[1:]):
        dt_ns = old.dt * 1e9
        old_actions = np.array(old.actions).reshape(old.horizon, old.action_dim)
        new_actions = np.array(new.actions).reshape(new.horizon, new.action_dim)
        old_t = stamp_to_ns(old.header.stamp) + dt_ns * np.arange(1, old.horizon + 1)
        new_t = stamp_to_ns(new.header.stamp) + dt_ns * np.arange(1, steps + 1)
        if new_t[-1] > old_t[-1]:
            continue
        interpolated = np.stack([np.interp(new_t, old_t, old_actions[:, j]) for j in range(old.action_dim)], 1)
        errors.append(np.abs(new_actions[:steps] - interpolated).mean())
    assert len(errors) >= 3, 'too few overlapping chunks'
    return float(np.mean(errors))


def chunks_in_mode(mode: str) -> list:
    harness = Harness(
        policy_overrides(execution_mode=mode, dry_run=True, bundle_path=str(UNTRAINED)), node_name=f'policy_{mode}'
    )
    inputs = start_inputs('--duration', '30')
    try:
        assert harness.node.trigger_configure().name == 'SUCCESS'
        assert harness.node.trigger_activate().name == 'SUCCESS'
        assert harness.wait_for(lambda: len(harness.recorder.chunks) >= 6, 25.0)
        with harness.recorder.lock:
            return [msg for _, msg in harness.recorder.chunks]
    finally:
        inputs.kill()
        inputs.wait()
        harness.close()


def test_rtc_chunks_continue_the_queued_actions():
    rtc = overlap_disagreement(chunks_in_mode('rtc'))
    latest = overlap_disagreement(chunks_in_mode('latest'))
    print(f'overlap disagreement rtc {rtc:.4f} latest {latest:.4f}')
    assert rtc < 0.3 * latest, (rtc, latest)
