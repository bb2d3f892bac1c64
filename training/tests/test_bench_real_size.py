"""The real-size benchmark at the test size: its π0 worker path end to end, and its memory estimate and refusals."""

import json

import pytest

from lerobot_policy_adamoe.testing import load_benchmark


@pytest.fixture(scope='module')
def bench():
    return load_benchmark('bench_real_size')


def _row(params_m, peak, precision='fp32', size='s'):
    return {'size': size, 'variant': 'dense', 'precision': precision, 'params_m': params_m, 'peak_rss_gb': peak}


def test_the_estimate_scales_the_nearest_smaller_measured_row(bench):
    measured = [_row(500, 6.0), _row(1000, 9.0, size='big'), _row(10, 1.0, size='tiny'), _row(800, 20.0, 'fp16')]
    estimate = bench.estimate_peak(1500, 'fp32', measured)
    assert estimate.factor == pytest.approx(9.0 / bench.param_gib(1000))
    assert estimate.peak_gib == pytest.approx(13.5) and estimate.basis == 'big dense fp32, 1000 M'
    assert bench.estimate_peak(700, 'fp32', measured).peak_gib == pytest.approx(6.0 * 700 / 500)
    # Nothing smaller but the tiny row (mostly libraries, not parameters): the smallest usable row instead.
    assert bench.estimate_peak(300, 'fp32', measured).peak_gib == pytest.approx(6.0 * 300 / 500)
    assert bench.estimate_peak(1500, 'fp16', measured).peak_gib == pytest.approx(20.0 * 1500 / 800)
    assert bench.estimate_peak(1500, 'fp32', [_row(10, 1.0)]) is None
    refused = {key: value for key, value in _row(1000, 9.0).items() if key != 'peak_rss_gb'}  # a row not measured
    assert bench.estimate_peak(1500, 'fp32', [refused]) is None


def test_a_row_no_smaller_than_a_killed_one_is_refused(bench):
    killed = [{**_row(1000, None, size='pi0_300m'), 'variant': 'adamoe'}]
    assert 'pi0_300m adamoe fp32) was killed' in bench.refusal(1000, None, 100.0, killed)
    assert bench.refusal(999, None, 100.0, killed) is None


def test_the_committed_calibration_refuses_pi0_and_admits_pi0_300m_dense(bench):
    calibration = json.loads(bench.CALIBRATION.read_text())['rows']
    memory = 24.0  # the machine the issue names
    for size, mode in (('pi0', 'dense'), ('pi0', 'adamoe'), ('pi0_300m', 'dense')):
        params = bench.meta_params_m(size, mode)  # the policy the worker builds, on the meta device
        estimate = bench.estimate_peak(params, 'fp32', calibration)
        reason = bench.refusal(params, estimate, memory, [])
        if size == 'pi0':
            assert 3.2e3 < params < 4.2e3 and estimate.peak_gib > memory
            assert reason.startswith(f'estimated peak RSS {estimate.peak_gib:.1f} GiB') and 'smolvla' in reason
        else:
            assert 1.29e3 < params < 1.31e3 and estimate.peak_gib < memory and reason is None


def test_the_pi0_worker_exports_runs_and_matches_lerobot(bench):
    row = bench.worker('pi0_tiny', 'adamoe', 'fp32', chunks=1, threads=1)
    assert row['params_m'] == bench.meta_params_m('pi0_tiny', 'adamoe')  # the gate counts what the worker builds
    assert row['max_abs_vs_eager_fp32'] < 1e-4  # the bundle on ONNX Runtime vs LeRobot's predict_action_chunk
    assert row['ort_total_ms'] > 0 and row['eager_ms'] > 0 and row['bundle_gb'] > 0 and not row['external_data']


def test_a_run_measures_what_fits_and_refuses_pi0_without_starting_it(bench, tmp_path, capsys):
    args = ['--sizes', 'pi0_tiny', 'pi0', '--variants', 'dense', '--chunks', '1', '--threads', '1']
    assert bench.main([*args, '--memory-gb', '24', '--out', str(tmp_path)]) == 0
    rows = {r['size']: r for r in json.loads((tmp_path / 'real_size.json').read_text())['rows']}
    assert rows['pi0_tiny']['status'] == 'measured' and rows['pi0_tiny']['max_abs_vs_eager_fp32'] < 1e-4
    assert rows['pi0']['status'].startswith('not started: estimated peak RSS') and 'export_s' not in rows['pi0']
    assert '[pi0_tiny] fp32 only' in capsys.readouterr().out  # --fp16 adamoe is the default; PI bundles are fp32
    text = (tmp_path / 'real_size.md').read_text()
    assert '| pi0_tiny | dense base | fp32 |' in text and '- pi0 dense base fp32 (3238.0 M): not started:' in text
