"""Expert activation plots and the statistics behind them, on real rollouts of the bundled policy."""

import json
import subprocess
import sys

import numpy as np
import pytest

from adamoe_ros.bundles import PICK_PLACE
from adamoe_ros.closed_loop.phases import PHASES
from adamoe_ros.closed_loop.report import (
    plot_expert_usage,
    plot_token_routing,
    summarize,
    usage_by_phase,
    usage_by_task,
)
from adamoe_ros.closed_loop.rollout import run_policy_episode
from adamoe_ros.closed_loop.stats import difference_interval, specialisation, usage_entropy, wilson_interval
from adamoe_ros.closed_loop.usage_from_dataset import phase_from_state
from adamoe_ros.engine import PolicyEngine
from adamoe_ros.sim.so101 import So101PickPlaceSim


@pytest.fixture(scope='module')
def rollout():
    engine = PolicyEngine.from_bundle(PICK_PLACE)
    sim = So101PickPlaceSim()
    try:
        yield (
            engine,
            run_policy_episode(engine, sim, seed=1000, instruction='pick up the cube', max_time=3.0, noise_seed=0),
        )
    finally:
        sim.close()


def test_rollout_records_per_token_routing(rollout):
    engine, episode = rollout
    spec = engine.spec
    assert len(episode.routing) >= 2 and episode.episode_time == pytest.approx(3.0, abs=0.2)
    for record in episode.routing:
        assert record.token_expert.shape == (spec.routing.num_layers, spec.horizon)
        assert record.token_expert.min() >= 0 and record.token_expert.max() < spec.routing.num_experts
        # The last flow step's assignment is one of the steps counted in the chunk's shares.
        for layer in range(spec.routing.num_layers):
            used = set(np.flatnonzero(record.token_fraction[layer] > 0))
            assert set(record.token_expert[layer].tolist()) <= used
        assert record.phase in PHASES


def test_plots_are_written(rollout, tmp_path):
    _, episode = rollout
    assert plot_token_routing(episode.routing, tmp_path / 'tokens.png').stat().st_size > 10_000
    assert plot_expert_usage([episode], tmp_path / 'usage.png').stat().st_size > 10_000
    shares = usage_by_phase([episode])
    assert shares and all(np.allclose(s.sum(axis=1), 1.0, atol=1e-5) for s in shares.values())
    by_task = usage_by_task([episode])
    assert list(by_task) == [episode.task] and np.allclose(by_task[episode.task].sum(axis=1), 1.0, atol=1e-5)
    # One episode, one task: its per-task share is the mean over all its chunks, as the overall share.
    overall = summarize([episode])['expert_usage']
    np.testing.assert_allclose(overall['by_task'][episode.task], overall['overall_token_fraction'], atol=1e-4)
    assert 0.0 <= summarize([episode])['expert_usage']['usage_entropy'] <= 1.0


def test_statistics():
    assert wilson_interval(0, 10)[0] == 0.0 and 0.25 < wilson_interval(0, 10)[1] < 0.35
    low, high = wilson_interval(5, 10)
    assert low < 0.5 < high and high - low == pytest.approx(2 * (0.5 - low))
    assert usage_entropy(np.array([[0.25, 0.25, 0.25, 0.25]]), 1) == pytest.approx(1.0)
    assert usage_entropy(np.array([[1.0, 0.0, 0.0, 0.0]]), 1) == pytest.approx(0.0, abs=1e-9)


def test_rate_difference_and_specialisation():
    low, high = difference_interval(30, 36, 10, 36)
    assert 0 < low < 30 / 36 - 10 / 36 < high < 1  # a large gap over 36 episodes each is supported
    low, high = difference_interval(20, 36, 18, 36)
    assert low < 0 < high  # two episodes apart is not
    assert difference_interval(18, 36, 20, 36) == pytest.approx((-high, -low))  # symmetric
    alike = {'reach': [[0.5, 0.5]], 'lift': [[0.5, 0.5]]}
    apart = {'reach': [[1.0, 0.0]], 'lift': [[0.0, 1.0]]}
    assert specialisation(alike) == pytest.approx(0.0) and specialisation(apart) == pytest.approx(0.5)


def test_phase_from_recorded_state():
    base = {'gripper': 1.0, 'cube_x': 0.25, 'cube_y': 0.05, 'cube_z': 0.02}
    assert phase_from_state(base, was_lifted=False) == 'reach'
    assert phase_from_state({**base, 'gripper': 0.2}, was_lifted=False) == 'grasp'
    assert phase_from_state({**base, 'gripper': 0.2, 'cube_z': 0.08}, was_lifted=True) == 'lift'
    assert phase_from_state({**base, 'cube_x': 0.22, 'cube_y': -0.12}, was_lifted=True) == 'place'


def test_direct_evaluation_runs_without_ros():
    # A fresh interpreter: this test process has rclpy loaded by other tests.
    probe = (
        'import sys, adamoe_ros.closed_loop.direct_eval; '
        'print(sorted({m.split(".")[0] for m in sys.modules} & {"rclpy", "torch", "lerobot"}))'
    )
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]'


def test_direct_evaluation_refuses_a_refill_threshold_outside_a_chunk(tmp_path, capsys):
    from adamoe_ros.closed_loop import direct_eval

    for bad in ('0', '1.5'):
        with pytest.raises(SystemExit):
            direct_eval.main(
                ['--bundle', str(PICK_PLACE), '--out', str(tmp_path / 'r.json'), '--refill-threshold', bad]
            )
        assert 'outside (0, 1]' in capsys.readouterr().err
    assert not (tmp_path / 'r.json').exists()


def test_direct_evaluation_writes_its_results_and_contact_sheet(tmp_path):
    from PIL import Image

    from adamoe_ros.closed_loop import direct_eval

    out, sheet = tmp_path / 'eval.json', tmp_path / 'sheet.png'
    # fmt: off
    direct_eval.main(['--bundle', str(PICK_PLACE), '--episodes', '2', '--max-time', '3.95', '--out', str(out),
                      '--sheet', str(sheet), '--refill-threshold', '0.75'])
    # fmt: on
    results = json.loads(out.read_text())
    assert results['summary']['episodes'] == 2
    # A chunk of 16 is replaced once 12 (0.75 of it) are left: 4 of each executed, 10 chunks in the 40 ticks.
    assert [e['chunks'] for e in results['episodes'] if not e['success']] == [10] * 2
    width, height = Image.open(sheet).size
    assert height > 0 and width > height  # one row per episode, frames over time side by side
