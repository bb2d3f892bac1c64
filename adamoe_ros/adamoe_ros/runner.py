"""Start several adamoe_ros nodes in one process on one executor, from a YAML file.

This is the stand-in for `ros2 launch` where launch/launch_ros are not installed (the PyPI wheels), and the
way the tests and the demo run the same nodes. Like the launch files, `adamoe_run` applies the Fast DDS
shared-memory profile (config/fastdds_shm.xml) unless the user set one (transport.py). The YAML lists nodes like a
launch file would:

    nodes:
      - executable: sim_bridge_node      # same names as `ros2 run adamoe_ros <executable>`
        name: sim_bridge
        namespace: ''
        parameters: {real_time_factor: 1.0}
      - executable: policy_node
        autostart: true                  # lifecycle nodes: configure + activate after start
        params_file: config/so101.yaml   # ROS parameter file (relative to this YAML or the package share)
        parameters: {bundle_path: ''}    # overrides, like `-p name:=value`
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter

from adamoe_ros.node_main import ExecutorThread, stop_requested_on_signals
from adamoe_ros.transport import apply_shm_profile

# Executable name (as in setup.py console_scripts) -> node class.
NODE_CLASSES: dict[str, str] = {
    'policy_node': 'adamoe_ros.policy.node:PolicyNode',
    'sim_bridge_node': 'adamoe_ros.sim.bridge_node:SimBridgeNode',
    'scripted_expert': 'adamoe_ros.sim.scripted_expert:ScriptedExpertNode',
    'recorder_node': 'adamoe_ros.recorder.node:RecorderNode',
}


@dataclass
class NodeSpec:
    """One node to start, as a launch file's Node(...) action would describe it."""

    executable: str
    name: str | None = None
    namespace: str = ''
    parameters: dict[str, Any] = field(default_factory=dict)
    params_file: str | None = None
    autostart: bool = True


def load_specs(path: str | Path) -> list[NodeSpec]:
    """Read the node list of a runner YAML file; relative params_file paths resolve against the file."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    specs = []
    for entry in data.get('nodes', []):
        spec = NodeSpec(**entry)
        if spec.executable not in NODE_CLASSES:
            raise ValueError(f'{path}: unknown executable {spec.executable!r}; known: {sorted(NODE_CLASSES)}')
        if spec.params_file and not Path(spec.params_file).is_absolute():
            spec.params_file = str((path.parent / spec.params_file).resolve())
        specs.append(spec)
    return specs


def node_class(executable: str) -> type[Node]:
    """Import the class behind an executable name."""
    module, cls = NODE_CLASSES[executable].split(':')
    return getattr(importlib.import_module(module), cls)


def _overrides(parameters: dict[str, Any]) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in parameters.items()]


class InProcessLaunch:
    """Own a context, the nodes and one executor spinning in a background thread."""

    def __init__(self, specs: list[NodeSpec], *, domain_id: int | None = None) -> None:
        """Create the context and the executor (the nodes are made in start()).

        A SingleThreadedExecutor, as in node_main.py (which says why): the nodes keep their own worker threads.
        """
        self.specs = specs
        self.context = rclpy.Context()
        init_kwargs = {} if domain_id is None else {'domain_id': domain_id}
        rclpy.init(context=self.context, **init_kwargs)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: dict[str, Node] = {}
        self._spinner: ExecutorThread | None = None

    def start(self) -> InProcessLaunch:
        """Create every node, start spinning, then bring lifecycle nodes with autostart to active."""
        to_activate: list[LifecycleNode] = []
        for spec in self.specs:
            kwargs: dict[str, Any] = {
                'context': self.context,
                'namespace': spec.namespace,
                'parameter_overrides': _overrides(spec.parameters),
            }
            if spec.params_file:
                kwargs['cli_args'] = ['--ros-args', '--params-file', spec.params_file]
            cls = node_class(spec.executable)
            node = cls(spec.name, **kwargs) if spec.name else cls(**kwargs)
            if node.get_name() in self.nodes:
                raise ValueError(f'two nodes named {node.get_name()!r}: give one a different name')
            self.nodes[node.get_name()] = node
            self.executor.add_node(node)
            if spec.autostart and isinstance(node, LifecycleNode):
                to_activate.append(node)
        self._spinner = ExecutorThread(self.executor).start()
        for node in to_activate:
            self.activate(node)
        return self

    @staticmethod
    def activate(node: LifecycleNode) -> None:
        """Configure and activate a lifecycle node; raise with its name if a transition fails."""
        for transition in (node.trigger_configure, node.trigger_activate):
            result = transition()
            if result != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError(f'{node.get_name()}: {transition.__name__} returned {result.name}')

    def shutdown(self) -> None:
        """Stop spinning and destroy everything in the order that avoids the rclpy abort at exit."""
        for node in self.nodes.values():
            if isinstance(node, LifecycleNode):
                try:
                    node.trigger_shutdown()
                except Exception:  # noqa: BLE001 - best effort while tearing down
                    pass
        # The loop ends before any node is destroyed: a spinning executor still adds the nodes' entities to its wait
        # set ("cannot use Destroyable because destruction was requested").
        try:
            if self._spinner is not None:
                self._spinner.stop()
            else:
                self.executor.shutdown()
        finally:
            for node in self.nodes.values():
                node.destroy_node()
            rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> InProcessLaunch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--set policy_node.dry_run=true` -> {'policy_node': {'dry_run': True}} (values parsed as YAML)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, _, value = item.partition('=')
        node, _, param = key.partition('.')
        if not param:
            raise SystemExit(f'--set expects NODE.PARAM=VALUE, got {item!r}')
        out.setdefault(node, {})[param] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point `adamoe_run CONFIG.yaml [--set node.param=value ...]`: run until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='runner YAML listing the nodes')
    parser.add_argument('--set', action='append', default=[], help='NODE.PARAM=VALUE override')
    args = parser.parse_args(argv)
    specs = load_specs(args.config)
    for spec in specs:
        spec.parameters.update(_parse_set(args.set).get(spec.name or spec.executable, {}))
    apply_shm_profile()  # before the first rclpy.init, as the launch files do for their processes
    launch = InProcessLaunch(specs)
    with stop_requested_on_signals() as stop:
        try:
            launch.start()
            while not stop.wait(0.2) and rclpy.ok(context=launch.context):
                pass
        finally:
            launch.shutdown()


if __name__ == '__main__':
    main()
