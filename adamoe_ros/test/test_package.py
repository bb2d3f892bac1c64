"""The repository is a ROS 2 workspace source: colcon builds the three packages and installs what `ros2 run` needs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXECUTABLES = [
    'policy_node',
    'sim_bridge_node',
    'scripted_expert',
    'recorder_node',
    'mcap_to_lerobot',
    'adamoe_run',
    'adamoe_demo',
]


@pytest.mark.slow
def test_colcon_build_installs_messages_executables_and_share(tmp_path):
    colcon = shutil.which('colcon')
    assert colcon, 'colcon-common-extensions is part of the venv'
    build = subprocess.run(
        [
            colcon,
            '--log-base',
            str(tmp_path / 'log'),
            'build',
            '--base-paths',
            str(REPO),
            '--build-base',
            str(tmp_path / 'build'),
            '--install-base',
            str(tmp_path / 'install'),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert '3 packages finished' in build.stdout
    install = tmp_path / 'install'
    lib = install / 'adamoe_ros' / 'lib' / 'adamoe_ros'
    for exe in EXECUTABLES:
        assert os.access(lib / exe, os.X_OK), f'{exe} missing from {lib}'
    share = install / 'adamoe_ros' / 'share' / 'adamoe_ros'
    assert (share / 'package.xml').is_file()
    assert sorted(p.name for p in (share / 'launch').glob('*.launch.py')) == sorted(
        p.name for p in (REPO / 'adamoe_ros' / 'launch').glob('*.launch.py')
    )
    assert sorted(p.name for p in (share / 'config').glob('*.yaml')) == sorted(
        p.name for p in (REPO / 'adamoe_ros' / 'config').glob('*.yaml')
    )
    # The installed workspace alone resolves the messages and our module from install/, like `source setup.bash`.
    # The robot profiles are package data of adamoe_contract: they must be installed with it.
    probe = (
        'import adamoe_ros, adamoe_contract, adamoe_ros_interfaces.msg as m; '
        'from adamoe_contract.robots import load_robot_profile; '
        'print(adamoe_ros.__file__); print(adamoe_contract.__file__); print(m.ActionChunk.__module__); '
        "print(load_robot_profile('so101').name)"
    )
    run = subprocess.run(
        ['bash', '-c', f'source {install}/setup.bash && {sys.executable} -c "{probe}"'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert all(str(install) in line for line in run.stdout.splitlines()[:2])
    assert run.stdout.splitlines()[-1] == 'so101'


def test_training_project_is_ignored_by_colcon():
    assert (REPO / 'training' / 'COLCON_IGNORE').exists()
    assert not (REPO / 'setup.py').exists(), 'a setup.py at the root would hide the packages from colcon'


def test_ruff_lint_clean():
    ruff = shutil.which('ruff')
    assert ruff
    result = subprocess.run([ruff, 'check', '--no-cache', str(REPO)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:]


def test_ruff_format_clean():
    # One formatter for the whole tree (ruff.toml: single quotes, as ROS Python code writes them).
    ruff = shutil.which('ruff')
    assert ruff
    result = subprocess.run(
        [ruff, 'format', '--check', '--no-cache', str(REPO)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-5000:]
