"""Node parameters: one table per node, integers for floats, descriptors, set-time checks, files and launch typing."""

import ast
import os
import signal
import subprocess
import sys
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import pytest
import rclpy
import yaml
from process_support import stop
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import DescribeParameters, GetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from adamoe_ros.parameters import (
    ParameterError,
    ParameterTable,
    checked_value,
    declare_parameters,
    given_values,
    param,
    read_parameters,
)
from adamoe_ros.policy.node import PolicyNode
from adamoe_ros.policy.params import PolicyParams
from adamoe_ros.recorder.config import RecorderConfig, RecorderConfigError
from adamoe_ros.recorder.mcap_convert import load_params_file
from adamoe_ros.recorder.node import RecorderNode
from adamoe_ros.runner import InProcessLaunch, NodeSpec, load_specs
from adamoe_ros.sim.bridge_node import SimBridgeNode
from adamoe_ros.sim.params import ScriptedExpertParams, SimBridgeParams
from adamoe_ros.sim.scripted_expert import ScriptedExpertNode

PACKAGE = Path(__file__).resolve().parents[1]
TABLES: dict[str, type[ParameterTable]] = {  # node name (as in the launch files) -> its table
    'policy_node': PolicyParams,
    'sim_bridge': SimBridgeParams,
    'scripted_expert': ScriptedExpertParams,
    'recorder': RecorderConfig,
}
EXECUTABLE_TABLES = {
    'policy_node': PolicyParams,
    'sim_bridge_node': SimBridgeParams,
    'scripted_expert': ScriptedExpertParams,
    'recorder_node': RecorderConfig,
}


@dataclass(frozen=True)
class Gains(ParameterTable):
    """A writable table with a float array (no node has one today)."""

    READ_ONLY: ClassVar[bool] = False
    gains: tuple[float, ...] = param((1.0,), 'gain per joint', gt=0.0)


@pytest.fixture
def context() -> Iterator[rclpy.Context]:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def float_fields(table: type[ParameterTable]) -> list[str]:
    return [name for name, kind in typing.get_type_hints(table).items() if kind is float]


def accepts(table: type[ParameterTable], name: str, value: object) -> bool:
    try:
        checked_value(table, name, value)
    except ParameterError:
        return False
    return True


def whole_number_for(table: type[ParameterTable], name: str) -> int:
    """An integer the parameter's rule accepts (what a user would type for a float)."""
    return next(v for v in (1, 0, 2, 10) if accepts(table, name, v))


def table_node(context: rclpy.Context, table: type[ParameterTable], cli: list[str] = (), **kwargs) -> Node:
    node = Node(f'params_{uuid.uuid4().hex[:8]}', context=context, cli_args=['--ros-args', *cli], **kwargs)
    declare_parameters(node, table)
    return node


# ---- tables and descriptors ---------------------------------------------------------------------------------


@pytest.mark.parametrize('table', list(TABLES.values()), ids=list(TABLES))
def test_table_defaults_are_valid_and_every_descriptor_is_complete(table, context):
    assert table() == table.from_values({})
    node = table_node(context, table)
    assert read_parameters(node, table) == table()
    for f in fields(table):
        descriptor = node.describe_parameter(f.name)
        assert descriptor.description, f.name
        assert descriptor.read_only is table.READ_ONLY, f.name
        bounded = any(sign in descriptor.additional_constraints for sign in '<>')
        if descriptor.type == ParameterType.PARAMETER_DOUBLE:
            assert bool(descriptor.floating_point_range) is bounded, f.name
        if descriptor.type == ParameterType.PARAMETER_INTEGER:
            assert bool(descriptor.integer_range) is bounded, f.name
    assert node.describe_parameter(
        'refill_threshold'
        if table is PolicyParams
        else 'fps'
        if table is RecorderConfig
        else 'control_rate'
        if table is ScriptedExpertParams
        else 'real_time_factor'
    ).additional_constraints
    assert table.READ_ONLY is (table is not PolicyParams)  # only the lifecycle node reads them again (configure)


@pytest.mark.parametrize('table', list(TABLES.values()), ids=list(TABLES))
def test_every_float_parameter_accepts_an_integer(table, context):
    names = float_fields(table)
    assert names
    values = {name: whole_number_for(table, name) for name in names}
    if table is RecorderConfig:
        values['fps'] = 1  # tolerance_s is at most one frame period
    # As typed on the command line (INTEGER from rcl) and as given by a launch file or the runner (Python int).
    cli = [arg for name, value in values.items() for arg in ('-p', f'{name}:={value}')]
    for node in (
        table_node(context, table, cli),
        table_node(context, table, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()]),
    ):
        config = read_parameters(node, table)
        for name in names:
            assert node.get_parameter(name).type_ is Parameter.Type.DOUBLE, name
            assert isinstance(getattr(config, name), float) and getattr(config, name) == values[name], name
    array_node = table_node(context, Gains, ['-p', 'gains:=[2, 3]'])
    assert read_parameters(array_node, Gains).gains == (2.0, 3.0)


def test_set_parameters_converts_integers_and_rejects_bad_values(context):
    node = table_node(context, PolicyParams)
    assert node.set_parameters([Parameter('control_rate', value=20)])[0].successful
    assert node.get_parameter('control_rate').value == 20.0
    for name, value, reason in (
        ('refill_threshold', 0.0, 'not > 0.0'),  # open bound: the table's callback
        ('refill_threshold', 1.5, 'out of range'),  # closed bound: rclpy applies the descriptor
        ('execution_mode', 'fastest', 'execution_mode'),
        ('camera_transports', ['raw', 'mpeg'], 'camera_transports'),
        ('control_rate', float('nan'), 'control_rate'),
        ('control_rate', 'fast', 'type'),
    ):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and reason in result.reason, (name, value, result.reason)
    assert read_parameters(node, PolicyParams).refill_threshold == 0.5
    read_only = table_node(context, SimBridgeParams)
    result = read_only.set_parameters([Parameter('real_time_factor', value=2)])[0]
    assert not result.successful and 'read-only' in result.reason


def test_float_arrays_take_integers_and_check_each_element(context):
    node = table_node(context, Gains)
    assert node.set_parameters([Parameter('gains', value=[2, 3])])[0].successful
    assert read_parameters(node, Gains).gains == (2.0, 3.0)
    result = node.set_parameters([Parameter('gains', value=[1.0, -1.0])])[0]
    assert not result.successful and "'gains': -1.0 is not > 0.0" in result.reason


def test_bad_initial_values_name_the_parameter(context):
    with pytest.raises(ParameterError, match="'real_time_factor'.*not a float"):
        table_node(context, SimBridgeParams, ['-p', 'real_time_factor:=fast'])
    with pytest.raises(ParameterError, match="'real_time_factor': -1.0 is not > 0.0"):
        table_node(context, SimBridgeParams, ['-p', 'real_time_factor:=-1'])
    zero = table_node(context, SimBridgeParams, ['-p', 'real_time_factor:=0'])  # inside the descriptor's [0, inf]
    with pytest.raises(ParameterError, match="'real_time_factor': 0.0 is not > 0.0"):
        read_parameters(zero, SimBridgeParams)
    twist = table_node(context, RecorderConfig, ['-p', 'action_type:=twist'])  # choices: checked when read
    with pytest.raises(RecorderConfigError, match="'action_type': 'twist' is not one of"):
        read_parameters(twist, RecorderConfig)


# ---- nodes: failed construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    'make, overrides',
    [
        (SimBridgeNode, {'physics_steps_per_tick': 0}),
        (ScriptedExpertNode, {'control_rate': 0}),
        (RecorderNode, {'action_type': 'twist'}),
        (PolicyNode, {'control_rate': -1}),
    ],
    ids=['sim_bridge', 'scripted_expert', 'recorder', 'policy_node'],
)
def test_failed_construction_then_a_clean_shutdown(make, overrides, tmp_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    params = [Parameter(k, value=v) for k, v in {**overrides, 'dataset_root': str(tmp_path)}.items()]
    with pytest.raises(ParameterError, match=next(iter(overrides))) as failure:
        make(context=context, namespace=f'/params_{uuid.uuid4().hex[:8]}', parameter_overrides=params)
    # The half-built node is still alive (the traceback holds it): shutting the context down destroys it.
    rclpy.shutdown(context=context)
    assert not context.ok() and failure.value.__traceback__ is not None


# ---- nodes as processes ---------------------------------------------------------------------------------------


def call(node: Node, srv_type: type, name: str, request: object, timeout: float = 60.0) -> object:
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=timeout), name
    future = client.call_async(request)
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    executor.spin_until_future_complete(future, timeout_sec=timeout)
    executor.remove_node(node)
    node.destroy_client(client)
    assert future.done(), name
    return future.result()


def test_sim_bridge_process_takes_integers_for_floats(context):
    namespace = f'/params_{uuid.uuid4().hex[:8]}'
    proc = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'adamoe_ros.sim.bridge_node',
            '--ros-args',
            '-r',
            f'__ns:={namespace}',
            '-r',
            f'/clock:={namespace}/clock',
            '-p',
            'real_time_factor:=2',
            '-p',
            'camera_rate:=0',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    probe = Node('params_probe', namespace=namespace, context=context)
    try:
        # Sim start-up (MuJoCo model, imports) on a loaded machine: the service wait is not a measured bound.
        values = call(
            probe,
            GetParameters,
            'sim_bridge/get_parameters',
            GetParameters.Request(names=['real_time_factor', 'camera_rate']),
        ).values
        assert [(v.type, v.double_value) for v in values] == [
            (ParameterType.PARAMETER_DOUBLE, 2.0),
            (ParameterType.PARAMETER_DOUBLE, 0.0),
        ]
        descriptors = call(
            probe,
            DescribeParameters,
            'sim_bridge/describe_parameters',
            DescribeParameters.Request(names=['real_time_factor']),
        ).descriptors
        assert descriptors[0].read_only and descriptors[0].floating_point_range[0].from_value == 0.0
    finally:
        probe.destroy_node()
        code, output = stop(proc, signal.SIGINT)
    assert code == 0, output
    assert 'Traceback' not in output, output


def test_sim_bridge_process_with_a_bad_parameter_exits_with_one_clear_error():
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'adamoe_ros.sim.bridge_node',
            '--ros-args',
            '-r',
            f'__ns:=/params_{uuid.uuid4().hex[:8]}',
            '-p',
            'physics_steps_per_tick:=0',
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert proc.returncode != 0
    assert "parameter 'physics_steps_per_tick': 0 is not >= 1" in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr and 'AttributeError' not in proc.stderr, proc.stderr


# ---- parameter files, runner files, launch files --------------------------------------------------------------


def parameter_files() -> list[Path]:
    """Every YAML in config/ that holds ROS node parameters (gz_bridge.yaml is a bridge mapping)."""
    files = []
    for path in sorted((PACKAGE / 'config').glob('*.yaml')):
        document = yaml.safe_load(path.read_text())
        if isinstance(document, dict) and any('ros__parameters' in section for section in document.values()):
            files.append(path)
    return files


def test_parameter_files_are_found():
    assert {p.name for p in parameter_files()} >= {
        'so101.yaml',
        'aloha.yaml',
        'generic_template.yaml',
        'record_so101.yaml',
        'sim_so101.yaml',
    }


@pytest.mark.parametrize('path', parameter_files(), ids=lambda p: p.name)
def test_every_parameter_file_reaches_its_node_in_any_namespace(path, context):
    for key, section in yaml.safe_load(path.read_text()).items():
        values = section['ros__parameters']
        # '/**' (any node) or '/**/<name>' (that node in any namespace); a bare '<name>' misses a namespaced node.
        assert key == '/**' or key.startswith('/**/'), f'{path.name}: key {key!r} misses namespaced nodes'
        if key == '/**':
            names = [n for n, t in TABLES.items() if set(values) <= {f.name for f in fields(t)}]
            assert len(names) == 1, f'{path.name}: {sorted(values)} fit the tables of {names}'
            name = names[0]
        else:
            name = key.removeprefix('/**/')
        table = TABLES[name]
        unknown = set(values) - {f.name for f in fields(table)}
        assert not unknown, f'{path.name}: {name} has no parameters {unknown}'
        # rcl parses the file for this node name in a namespace, as for a node started with namespace:=arm1.
        node = Node(name, namespace='/arm1', context=context, cli_args=['--ros-args', '--params-file', str(path)])
        missing = set(values) - set(given_values(node))  # values equal to defaults would hide a miss below
        assert not missing, f'{path.name}: {missing} did not reach /arm1/{name}'
        declare_parameters(node, table)
        config = read_parameters(node, table)
        for parameter, value in values.items():
            assert getattr(config, parameter) == checked_value(table, parameter, value), (
                f'{path.name}: {parameter} did not reach /arm1/{name}'
            )
        node.destroy_node()


def test_converter_reads_the_recorder_file_for_any_namespace(tmp_path):
    params = PACKAGE / 'config' / 'record_so101.yaml'
    assert RecorderConfig.from_values(load_params_file(params, 'arm1')) == RecorderConfig()
    other = tmp_path / 'sim.yaml'
    other.write_text((PACKAGE / 'config' / 'sim_so101.yaml').read_text())
    with pytest.raises(RecorderConfigError, match='no parameters for node /arm1/recorder'):
        load_params_file(other, 'arm1')
    with pytest.raises(RecorderConfigError, match='not a usable ROS params file'):
        load_params_file(tmp_path / 'missing.yaml')


def test_runner_files_name_known_parameters_with_usable_values():
    for path in sorted((PACKAGE / 'launch').glob('*.runner.yaml')):
        for spec in load_specs(path):
            table = EXECUTABLE_TABLES[spec.executable]
            for name, value in spec.parameters.items():
                if name != 'use_sim_time':
                    checked_value(table, name, value)


def test_runner_applies_params_files_and_overrides(tmp_path):
    params = tmp_path / 'sim.yaml'
    params.write_text('/**/sim_bridge:\n  ros__parameters:\n    physics_steps_per_tick: 5\n    seed: 7\n')
    namespace = f'/params_{uuid.uuid4().hex[:8]}'
    spec = NodeSpec(
        'sim_bridge_node',
        name='sim_bridge',
        namespace=namespace,
        params_file=str(params),
        parameters={'real_time_factor': 2, 'camera_rate': 0, 'seed': 3},
    )
    with InProcessLaunch([spec]) as launch:
        config = read_parameters(launch.nodes['sim_bridge'], SimBridgeParams)
    assert (config.physics_steps_per_tick, config.real_time_factor, config.camera_rate, config.seed) == (5, 2.0, 0.0, 3)


def launch_parameter_values(path: Path) -> Iterator[tuple[str, ast.expr]]:
    """(name, value expression) of each entry of a dict passed as parameters=[...] to a launch_ros node."""
    for call_node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(call_node, ast.Call):
            continue
        for keyword in call_node.keywords:
            if keyword.arg == 'parameters' and isinstance(keyword.value, ast.List):
                for item in keyword.value.elts:
                    if isinstance(item, ast.Dict):
                        yield from ((k.value, v) for k, v in zip(item.keys, item.values))


def test_every_launch_argument_that_becomes_a_parameter_is_typed():
    files = sorted((PACKAGE / 'launch').glob('*.launch.py'))
    assert len(files) == 4
    checked = 0
    for path in files:
        for name, value in launch_parameter_values(path):
            checked += 1
            if isinstance(value, ast.Constant):
                continue
            # Untyped, launch_ros turns real_time_factor:=2 into an INTEGER (and repo_id:=123 into one too).
            assert isinstance(value, ast.Call) and getattr(value.func, 'id', '') == 'ParameterValue', (path.name, name)
            assert any(k.arg == 'value_type' for k in value.keywords), (path.name, name)
    assert checked >= 9
