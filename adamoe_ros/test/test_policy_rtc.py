"""Execution modes on the real engine: rtc conditions each new chunk on the actions still queued, so
consecutive chunks agree on their overlap far better than independent (latest) chunks do.

These tests run an UNTRAINED bundle: its independent chunks disagree a lot, so the pull of the guidance is plain to
see; a trained policy's consecutive chunks already agree, which says nothing about the guidance."""

import signal
from pathlib import Path

import numpy as np
from test_policy_support import Harness, policy_overrides, start_inputs

from adamoe_ros.policy.chunk_queue import ActionQueue
from adamoe_ros.ros_env import stamp_to_ns

UNTRAINED = Path(__file__).parent / 'fixtures' / 'untrained_so101'


def overlap_disagreement(pairs: list, steps: int = 4) -> float:
    """Mean |new - old| over the first steps of each new chunk, the old chunk interpolated at the new times."""
    errors = []
    for old, new in pairs:
        dt_ns = round(old.dt * 1e9)
        old_actions = np.array(old.actions).reshape(old.horizon, old.action_dim)
        new_actions = np.array(new.actions).reshape(new.horizon, new.action_dim)
        old_t = ActionQueue.chunk_times(stamp_to_ns(old.header.stamp), dt_ns, old.horizon)
        new_t = ActionQueue.chunk_times(stamp_to_ns(new.header.stamp), dt_ns, steps)
        if new_t[-1] > old_t[-1]:
            continue
        interpolated = np.stack([np.interp(new_t, old_t, old_actions[:, j]) for j in range(old.action_dim)], 1)
        errors.append(np.abs(new_actions[:steps] - interpolated).mean())
    assert len(errors) >= 3, 'too few overlapping chunks'
    return float(np.mean(errors))


def guided_pairs(chunks: list) -> list:
    """Consecutive chunks whose second continues the first (prefix_steps > 0).

    An rtc chunk is guided only when actions were queued as it was planned. After an input went stale (a loaded
    machine can deliver a message past max_input_age) the node drops its queue, and the next chunk starts afresh like
    a latest chunk: such a pair says nothing about the guidance.
    """
    return [(old, new) for old, new in zip(chunks, chunks[1:]) if new.prefix_steps > 0]


def chunks_in_mode(mode: str, enough: int = 6, stall: bool = False) -> list:
    """Chunks of an untrained bundle in `mode` until `enough` of them count (in rtc: guided ones).

    stall: halfway, stop the input publisher (SIGSTOP) until the node has stopped commanding on stale inputs, then
    let it go on: the queue is dropped, and the chunks after it start again.
    """
    harness = Harness(
        policy_overrides(execution_mode=mode, dry_run=True, bundle_path=str(UNTRAINED)), node_name=f'policy_{mode}'
    )
    inputs = start_inputs('--duration', '60')

    def counted() -> int:
        with harness.recorder.lock:
            chunks = [msg for _, msg in harness.recorder.chunks]
        return sum(c.prefix_steps > 0 for c in chunks) if mode == 'rtc' else len(chunks)

    try:
        assert harness.node.trigger_configure().name == 'SUCCESS'
        assert harness.node.trigger_activate().name == 'SUCCESS'
        if stall:
            assert harness.wait_for(lambda: counted() >= enough // 2, 25.0)
            inputs.send_signal(signal.SIGSTOP)
            try:  # stale inputs reported: the control tick has dropped the queue
                stalled = harness.wait_for(lambda: harness.node.status_message().stale_inputs, 10.0)
                assert stalled, 'inputs never went stale while stalled'
            finally:
                inputs.send_signal(signal.SIGCONT)
        assert harness.wait_for(lambda: counted() >= enough, 25.0)
        with harness.recorder.lock:
            return [msg for _, msg in harness.recorder.chunks]
    finally:
        inputs.kill()
        inputs.wait()
        harness.close()


def test_rtc_chunks_continue_the_queued_actions():
    rtc_chunks, latest_chunks = chunks_in_mode('rtc', stall=True), chunks_in_mode('latest')
    # Nothing is queued before the first chunk, nor after the stall dropped the queue: those start afresh.
    assert rtc_chunks[0].prefix_steps == 0 and any(c.prefix_steps == 0 for c in rtc_chunks[1:])
    assert all(c.prefix_steps == 0 for c in latest_chunks)
    rtc = overlap_disagreement(guided_pairs(rtc_chunks))
    latest = overlap_disagreement(list(zip(latest_chunks, latest_chunks[1:])))
    print(f'overlap disagreement rtc {rtc:.4f} latest {latest:.4f}')
    assert rtc < 0.3 * latest, (rtc, latest)
