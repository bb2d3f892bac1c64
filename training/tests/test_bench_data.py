"""The data-loading benchmark runs end to end on its generated dataset and prints both loaders against LeRobot's."""

import re

from lerobot_policy_adamoe.testing import load_benchmark


def test_prints_each_loaders_time_and_ratio(capsys):
    assert load_benchmark('bench_data').main(['--rounds', '1', '--batch-size', '4', '--chunk', '5']) == 0
    rows = dict(re.findall(r'^\s+(\w+)\s+[\d.]+ ms per batch\s+ratio ([\d.]+)$', capsys.readouterr().out, re.M))
    assert set(rows) == {'lerobot', 'decoded'} and rows['lerobot'] == '1.000'
