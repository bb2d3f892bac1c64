"""The ablation report pools seeds per variant and says which differences its intervals support."""

import json
from pathlib import Path

import pytest

from adamoe_ros.closed_loop.ablation_report import write_report
from adamoe_ros.closed_loop.stats import wilson_interval


def write_eval(folder: Path, wins_per_task: dict[str, int], per_task: int = 6, usage: list | None = None) -> None:
    folder.mkdir(parents=True)
    wins = sum(wins_per_task.values())
    n = per_task * len(wins_per_task)
    summary = {
        'episodes': n,
        'successes': wins,
        'success_rate': wins / n,
        'lift_rate': 1.0,
        'inference': {'p50_ms': 10.0},
        'per_task': {t: {'successes': w, 'episodes': per_task} for t, w in wins_per_task.items()},
    }
    if usage is not None:
        summary['expert_usage'] = {
            'usage_entropy': 0.9,
            'by_task': {t: usage[i] for i, t in enumerate(wins_per_task)},
            'by_phase': {'reach': usage[0], 'lift': usage[1]},
        }
    (folder / 'eval.json').write_text(json.dumps({'summary': summary}))
    log = [{'step': 10 * i, 'flow_loss': 0.2, 'balance_loss': 0.1, 'step_s': 0.1 + (i == 1)} for i in range(1, 4)]
    (folder / 'train_log.jsonl').write_text(''.join(json.dumps(entry) + '\n' for entry in log))


def test_seeds_pool_per_variant_and_differences_are_judged(tmp_path: Path) -> None:
    write_eval(tmp_path / 'dense' / 'seed0', {'red_on_green': 1, 'blue_on_yellow': 0})
    write_eval(tmp_path / 'dense' / 'seed1', {'red_on_green': 2, 'blue_on_yellow': 1})
    routed = [[[1.0, 0.0]], [[0.0, 1.0]]]  # one layer, two experts: each task its own expert
    write_eval(tmp_path / 'adamoe_e4_k1' / 'seed0', {'red_on_green': 6, 'blue_on_yellow': 6}, usage=routed)
    write_eval(tmp_path / 'adamoe_e4_k1' / 'seed1', {'red_on_green': 6, 'blue_on_yellow': 5}, usage=routed)
    write_eval(tmp_path / 'vanilla_e4_k1' / 'seed0', {'red_on_green': 1, 'blue_on_yellow': 1})
    text = write_report(tmp_path, ['dense', 'vanilla_e4_k1', 'adamoe_e4_k1', 'adamoe_e8_k1'], command='cmd')
    rows = json.loads((tmp_path / 'ablation.json').read_text())
    assert list(rows) == ['dense', 'vanilla_e4_k1', 'adamoe_e4_k1']  # not evaluated: left out
    dense, adamoe = rows['dense'], rows['adamoe_e4_k1']
    assert (dense['successes'], dense['episodes']) == (4, 24) and dense['per_seed_rates'] == [1 / 12, 3 / 12]
    assert dense['ci95'] == pytest.approx(wilson_interval(4, 24))
    assert adamoe['per_task']['blue_on_yellow'] == {
        'successes': 11,
        'episodes': 12,
        'ci95': list(wilson_interval(11, 12)),
    }
    assert adamoe['task_specialisation'] == pytest.approx(0.5)
    assert dense['step_p50_s'] == pytest.approx(0.1)  # the median: one slow step (a resume's first) does not count
    assert dense['task_specialisation'] != dense['task_specialisation']  # dense: no experts, NaN
    line = next(x for x in text.splitlines() if x.startswith('- adamoe_e4_k1 - dense'))
    assert line.startswith(f'- adamoe_e4_k1 - dense: {23 / 24 - 4 / 24:+.0%}') and line.endswith(': supported')
    # 2/12 vs 4/24 over so few episodes: no claim.
    line = next(x for x in text.splitlines() if x.startswith('- vanilla_e4_k1 - dense'))
    assert line.endswith('not supported (the interval includes 0)')
    assert 'cmd' in text and (tmp_path / 'README.md').read_text() == text
