"""scripts/ros_eval_per_task.py: every task of the scene over ROS on its own seeds, resumed task by task."""

import importlib.util
import json
from pathlib import Path

from adamoe_ros.closed_loop.instructions import task_seeds
from adamoe_ros.sim.tasks import MULTITASK

SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'ros_eval_per_task.py'


def load_script():
    spec = importlib.util.spec_from_file_location('ros_eval_per_task', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_task_is_evaluated_once_on_its_seeds_and_pooled(tmp_path):
    script = load_script()
    args = ['--episodes', '1', '--max-time', '0.3', '--out', str(tmp_path)]
    script.main(args)
    files = {task.name: tmp_path / f'{task.name}.json' for task in MULTITASK.tasks}
    for task, file in files.items():
        result = json.loads(file.read_text())
        assert [e['seed'] for e in result['episodes']] == task_seeds(MULTITASK, task, 2000, 1)
        assert result['task'] == task
    table = (tmp_path / 'table.md').read_text()
    assert all(f'| {task} | ' in table for task in files) and f'/{len(files)} (' in table

    written = {file: file.stat().st_mtime_ns for file in files.values()}
    files['red_on_green'].unlink()  # as if stopped during that task: only it runs again
    script.main(args)
    assert all(file.stat().st_mtime_ns == written[file] for file in files.values() if file.name != 'red_on_green.json')
    assert files['red_on_green'].exists()
