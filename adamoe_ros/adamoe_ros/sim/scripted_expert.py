"""Scripted teleoperator node: solves the sim's task through ROS topics only, like a leader arm."""

import threading
from typing import Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from adamoe_ros.joint_state import JointStateError, JointStateMatcher
from adamoe_ros.node_main import run_node
from adamoe_ros.parameters import ParameterError, declare_parameters, read_parameters
from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, RELIABLE_QOS, SENSOR_QOS, stamp_to_ns
from adamoe_ros.sim.expert_plan import RECOVERY_SETTINGS, PickPlacePlan, PlanSettings
from adamoe_ros.sim.params import ScriptedExpertParams
from adamoe_ros.sim.scene import SO101, SceneOptions, build_model
from adamoe_ros.sim.tasks import TaskDef, scene_def, target_rest_position


class ScriptedExpertNode(Node):
    """Runs the scripted plan on episode start; control ticks are clocked by joint_states stamps (sim time).

    Reads `joint_states`, the scene's cube positions (`sim/cube_position` or `sim/object_positions`),
    `sim/goal_position` and the episode's task on `sim/task`; publishes the commanded targets as a leader-arm
    `leader/joint_states` (held at the last target from the end of an episode until the next reset) and the
    follower's (with `recovery`, pushed off in some first grasps) on `forward_position_controller/commands`, the
    task as an instruction (a train phrase of tasks.py, drawn per episode) on `instruction`, and `idle` /
    `running <phase>` / `done` on `expert/status`.
    """

    def __init__(self, node_name: str = 'scripted_expert', **kwargs: Any) -> None:
        """Declare parameters, build the kinematic model copy and wire the topics and service."""
        super().__init__(node_name, **kwargs)
        declare_parameters(self, ScriptedExpertParams)
        p = read_parameters(self, ScriptedExpertParams)
        self._scene = scene_def(p.scene)
        self._rng = np.random.default_rng(p.phrase_seed)
        self._episode_timeout_s = p.episode_timeout
        self._period_ns = int(NS_PER_S / p.control_rate)
        # Kinematics only: a model of our own, never the sim's state.
        model = build_model(SceneOptions(primitive_visuals=True), self._scene)
        self._plan = PickPlacePlan(model, 1.0 / p.control_rate, RECOVERY_SETTINGS if p.recovery else PlanSettings())

        self._leader_pub = self.create_publisher(JointState, 'leader/joint_states', RELIABLE_QOS)
        self._command_pub = self.create_publisher(
            Float64MultiArray, 'forward_position_controller/commands', RELIABLE_QOS
        )
        self._instruction_pub = self.create_publisher(String, 'instruction', LATCHED_QOS)
        self._status_pub = self.create_publisher(String, 'expert/status', LATCHED_QOS)
        self.create_subscription(JointState, 'joint_states', self._on_joint_states, SENSOR_QOS)
        self.create_subscription(Float64MultiArray, self._scene.state_topic, self._on_cubes, SENSOR_QOS)
        self.create_subscription(Float64MultiArray, 'sim/goal_position', self._on_goals, LATCHED_QOS)
        self.create_subscription(String, 'sim/task', self._on_task, LATCHED_QOS)
        self.create_service(Trigger, 'expert/start_episode', self._on_start)

        self._matcher = JointStateMatcher(SO101.joint_names, allow_extra_joints=True)
        self._cubes: dict[str, np.ndarray] | None = None
        self._goals: dict[str, np.ndarray] | None = None
        self._task: TaskDef | None = None
        self.instruction = ''  # the instruction of the current task, as published
        self._table_z = 0.0
        self._joints: np.ndarray | None = None
        self._running = False
        self._targets: np.ndarray | None = None
        self._episode_start_ns = 0
        self._next_tick_ns = 0
        self.episode_done = threading.Event()
        self._status = ''
        self._publish_status('idle')

    def missing_inputs(self) -> list[str]:
        """Topics the expert has not heard yet (an episode can start once this is empty)."""
        return [
            name
            for name, value in (
                ('joint_states', self._joints),
                (self._scene.state_topic, self._cubes),
                ('sim/goal_position', self._goals),
                ('sim/task', self._task),
            )
            if value is None
        ]

    @property
    def task(self) -> TaskDef | None:
        """The task last announced on sim/task (None before the first)."""
        return self._task

    def start_episode(self) -> tuple[bool, str]:
        """Begin solving the current task from the current state; returns (started, why)."""
        missing = self.missing_inputs()
        if missing:
            return False, f'no data yet on {", ".join(missing)}'
        self._plan.reset(self._rng)
        self._targets = None
        self._running = True
        self._episode_start_ns = self._next_tick_ns = 0
        self._table_z = float(self._cubes[self._task.cube][2])
        self.episode_done.clear()
        self._publish_status('running')
        return True, f'episode started: {self._task.name}'

    @property
    def running(self) -> bool:
        """True while an episode is being executed."""
        return self._running

    @property
    def holding(self) -> bool:
        """True from the end of an episode until the next reset: the leader streams the last target."""
        return not self._running and self._targets is not None

    def _on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.start_episode()
        self.get_logger().info(f'start_episode: {response.message}')
        return response

    def _on_cubes(self, msg: Float64MultiArray) -> None:
        values = self._xyz_by_name(msg, list(self._scene.state_objects))
        if values is not None:
            self._cubes = {c.name: values[c.name] for c in self._scene.cubes}

    def _on_goals(self, msg: Float64MultiArray) -> None:
        values = self._xyz_by_name(msg, [g.name for g in self._scene.goals])
        if values is not None:
            self._goals = values

    @staticmethod
    def _xyz_by_name(msg: Float64MultiArray, names: list[str]) -> dict[str, np.ndarray] | None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (3 * len(names),) or not np.all(np.isfinite(data)):
            return None
        return {name: data[3 * i : 3 * i + 3] for i, name in enumerate(names)}

    def _on_task(self, msg: String) -> None:
        # A new episode's task: say it in words, as the operator would, in a phrase the training split allows.
        try:
            self._task = self._scene.task(msg.data)
        except KeyError as err:
            self.get_logger().error(f'sim/task ignored: {err}')
            return
        self._targets = None  # a reset: the held target belonged to the last episode
        self.instruction = str(self._rng.choice(self._task.train))
        self._instruction_pub.publish(String(data=self.instruction))

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            self._joints = self._matcher.positions(msg)
        except JointStateError as err:
            self.get_logger().warn(f'joint_states ignored: {err}', throttle_duration_sec=5.0)
            return
        if not self._running:
            if self._targets is not None:
                # Done: a leader arm at rest goes on streaming where it is held, so the frames a recorder takes while
                # the released cube settles carry an action (the last target) instead of being dropped.
                self._publish_leader(self._targets, msg)
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        if self._episode_start_ns == 0:
            self._episode_start_ns = self._next_tick_ns = stamp_ns
        if stamp_ns < self._next_tick_ns:
            # Like a leader arm, keep streaming the held target at the joint-state rate, so a recorder finds
            # an action next to every frame time (a 10 Hz-only stream leaves gaps of up to one period).
            if self._targets is not None:
                self._publish_leader(self._targets, msg)
            return
        self._next_tick_ns += self._period_ns * ((stamp_ns - self._next_tick_ns) // self._period_ns + 1)
        self._control_tick(msg)

    def _control_tick(self, joint_msg: JointState) -> None:
        target = target_rest_position(self._task, self._cubes, self._goals, self._table_z)
        targets = self._plan.act(self._joints, self._cubes[self._task.cube], target)
        self._targets = targets
        self._publish_leader(targets, joint_msg)
        self._command_pub.publish(Float64MultiArray(data=self._plan.follower_command.tolist()))
        timed_out = stamp_to_ns(joint_msg.header.stamp) - self._episode_start_ns > self._episode_timeout_s * NS_PER_S
        if self._plan.done or timed_out:
            self._running = False
            self._publish_status('done' if self._plan.done else 'timeout')
            self.get_logger().info('episode finished' if self._plan.done else 'episode timed out')
            self.episode_done.set()
        else:
            self._publish_status(f'running {self._plan.phase.name.lower()}')

    def _publish_leader(self, targets: np.ndarray, joint_msg: JointState) -> None:
        leader = JointState(name=list(SO101.joint_names), position=targets.tolist())
        leader.header.stamp = joint_msg.header.stamp
        self._leader_pub.publish(leader)

    def _publish_status(self, text: str) -> None:
        if text != self._status:  # latched topic: publish changes only
            self._status = text
            self._status_pub.publish(String(data=text))


def main(args: list[str] | None = None) -> int:
    """Run the scripted expert (ros2 run adamoe_ros scripted_expert); start episodes via expert/start_episode."""
    return run_node(ScriptedExpertNode, args, startup_errors=(ParameterError,))


if __name__ == '__main__':
    raise SystemExit(main())
