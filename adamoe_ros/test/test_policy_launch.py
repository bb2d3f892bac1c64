"""launch/policy.launch.py cannot run here (no launch/launch_ros wheels): check what it names exists."""

import ast
import importlib
import importlib.util
import re

import pytest
from test_policy_support import PACKAGE

LAUNCH_FILE = PACKAGE / 'launch' / 'policy.launch.py'
TREE = ast.parse(LAUNCH_FILE.read_text())


def string_constants() -> set[str]:
    return {n.value for n in ast.walk(TREE) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def console_scripts() -> dict[str, str]:
    text = (PACKAGE / 'setup.py').read_text()
    return dict(re.findall(r"'(\w+) = ([\w.]+:\w+)'", text))


def test_executable_and_package_exist():
    constants = string_constants()
    assert 'adamoe_ros' in constants and '<name>adamoe_ros</name>' in (PACKAGE / 'package.xml').read_text()
    scripts = console_scripts()
    assert 'policy_node' in constants and 'policy_node' in scripts
    module, function = scripts['policy_node'].split(':')
    assert callable(getattr(importlib.import_module(module), function))


def test_named_files_exist_and_are_installed():
    constants = string_constants()
    assert 'config' in constants
    yaml_files = {c for c in constants if c.endswith('.yaml')}
    assert yaml_files == {'so101.yaml'}
    for name in yaml_files:
        assert (PACKAGE / 'config' / name).is_file()
    setup = (PACKAGE / 'setup.py').read_text()
    assert "glob('launch/*.launch.py')" in setup and "glob('config/*.yaml')" in setup


def test_declares_the_documented_arguments():
    declared = {
        node.args[0].value
        for node in ast.walk(TREE)
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument'
    }
    assert {'bundle_path', 'robot_config', 'namespace', 'use_sim_time', 'dry_run', 'camera_remaps'} <= declared


def test_parse_remaps():
    function = next(n for n in TREE.body if isinstance(n, ast.FunctionDef) and n.name == 'parse_remaps')
    namespace: dict = {}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(LAUNCH_FILE), 'exec'), namespace)
    parse = namespace['parse_remaps']
    assert parse('') == []
    assert parse('a:=/b, c/d:=e') == [('a', '/b'), ('c/d', 'e')]
    with pytest.raises(ValueError, match='FROM:=TO'):
        parse('a=b')


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None, reason='launch_ros is not installed here')
def test_generate_launch_description():
    spec = importlib.util.spec_from_file_location('policy_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description().entities
