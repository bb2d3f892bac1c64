"""Paired comparison of two evaluations: McNemar's exact test and the table `closed_loop.compare` prints."""

import json

import pytest

from adamoe_ros.closed_loop import compare
from adamoe_ros.closed_loop.stats import mcnemar_exact_p


def test_mcnemar_exact_p():
    assert mcnemar_exact_p(0, 0) == 1.0 and mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)  # five discordant pairs all one way: 2 x 0.5^5
    assert mcnemar_exact_p(0, 6) == pytest.approx(2 / 64)  # six are the fewest that reach p < 0.05
    assert mcnemar_exact_p(2, 14) == mcnemar_exact_p(14, 2) == pytest.approx(2 * (1 + 16 + 120) / 2**16)


def write_eval(path, outcomes):
    episodes = [
        {'seed': seed, 'task': task, 'instruction': f'do {task}', 'success': won} for seed, task, won in outcomes
    ]
    path.write_text(json.dumps({'summary': {}, 'episodes': episodes}))
    return path


def test_a_folder_and_a_file_are_paired_by_episode(tmp_path, capsys):
    folder = tmp_path / 'a'
    folder.mkdir()
    write_eval(folder / 'red.json', [(0, 'red', False), (2, 'red', False), (4, 'red', True)])
    write_eval(folder / 'blue.json', [(1, 'blue', True), (3, 'blue', True)])
    shuffled = [(3, 'blue', True), (1, 'blue', False), (4, 'red', True), (2, 'red', True), (0, 'red', True)]
    b = write_eval(tmp_path / 'b.json', shuffled)
    compare.main([str(folder), str(b)])
    rows = {line.split(' | ')[0].strip('| '): line for line in capsys.readouterr().out.splitlines()}
    assert rows['red'].startswith('| red | 1/3 | 3/3 | 0 / 2 | 0.5 |')
    assert rows['blue'].startswith('| blue | 2/2 | 1/2 | 1 / 0 | 1 |')
    assert rows['**all**'].startswith('| **all** | 3/5 | 4/5 | 1 / 2 | 1 | +20 (')


def test_evaluations_of_different_episodes_are_refused(tmp_path, capsys):
    a = write_eval(tmp_path / 'a.json', [(0, 'red', True), (1, 'red', True)])
    b = write_eval(tmp_path / 'b.json', [(0, 'red', True), (5, 'red', True)])
    with pytest.raises(SystemExit):
        compare.main([str(a), str(b)])
    assert 'the evaluations ran different episodes' in capsys.readouterr().err
