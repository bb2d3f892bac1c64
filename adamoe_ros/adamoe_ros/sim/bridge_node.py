"""ROS 2 node that runs the SO-101 MuJoCo sim: clock, joint states, cameras, commands, reset and status."""

import threading
import time
from typing import Any

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from adamoe_ros.node_main import run_node
from adamoe_ros.parameters import ParameterError, declare_parameters, read_parameters
from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, RELIABLE_QOS, SENSOR_QOS, ns_to_stamp
from adamoe_ros.ros_image import numpy_to_image
from adamoe_ros.sim.commands import ActiveTrajectory, CommandError, limit_step, trajectory_from_msg, validate_positions
from adamoe_ros.sim.params import SimBridgeParams
from adamoe_ros.sim.scene import SO101, SceneOptions
from adamoe_ros.sim.so101 import So101PickPlaceSim
from adamoe_ros.sim.task import TaskStatus
from adamoe_ros.sim.tasks import TaskDef
from adamoe_ros_interfaces.srv import GetTaskStatus, ResetSim

# A slow machine gets behind real time; catching up at most this many ticks per timer call keeps the
# executor responsive (the sim then runs slower than requested instead of stalling everything).
_MAX_TICKS_PER_CALLBACK = 5


class SimBridgeNode(Node):
    """Steps the sim on a wall-clock timer paced by real_time_factor; every stamp is sim time.

    Per episode (reset) it publishes, latched, the task drawn from the seed on `sim/task` and every goal centre
    on `sim/goal_position` (x, y, z per goal, in the scene's goal order); every cube centre streams on the
    scene's state topic with joint_states; `sim/task_status` judges the episode's task.
    """

    def __init__(self, node_name: str = 'sim_bridge', **kwargs: Any) -> None:
        """Declare parameters, build the sim and create publishers, subscriptions and services."""
        super().__init__(node_name, **kwargs)
        self._sim: So101PickPlaceSim | None = None  # destroy_node may run on a node whose construction failed
        declare_parameters(self, SimBridgeParams)
        p = read_parameters(self, SimBridgeParams)
        self._physics_steps = p.physics_steps_per_tick
        self._rtf = p.real_time_factor
        self._image_height, self._image_width = p.image_height, p.image_width
        self._max_joint_speed = p.max_joint_speed
        self._seed = p.seed

        self._sim = So101PickPlaceSim(
            randomize_goal=p.randomize_goal,
            scene_options=SceneOptions(max_image_width=self._image_width, max_image_height=self._image_height),
            scene=p.scene,
        )
        self._tick_ns = int(round(self._physics_steps * self._sim.dt * NS_PER_S))
        self._joint_state_period_ns = int(NS_PER_S / p.joint_state_rate)
        self._camera_period_ns = int(NS_PER_S / p.camera_rate) if p.camera_rate > 0 else 0

        self._clock_pub = self.create_publisher(ClockMsg, '/clock', RELIABLE_QOS)
        self._joint_pub = self.create_publisher(JointState, 'joint_states', SENSOR_QOS)
        self._cube_pub = self.create_publisher(Float64MultiArray, self._sim.scene.state_topic, SENSOR_QOS)
        self._goal_pub = self.create_publisher(Float64MultiArray, 'sim/goal_position', LATCHED_QOS)
        self._task_pub = self.create_publisher(String, 'sim/task', LATCHED_QOS)
        self._image_pubs = (
            {camera.name: self.create_publisher(Image, camera.topic, SENSOR_QOS) for camera in SO101.cameras}
            if self._camera_period_ns
            else {}
        )
        self.create_subscription(
            JointTrajectory, 'joint_trajectory_controller/joint_trajectory', self._on_trajectory, RELIABLE_QOS
        )
        self.create_subscription(
            Float64MultiArray, 'forward_position_controller/commands', self._on_forward_command, RELIABLE_QOS
        )
        # Services get their own group: with the stepping timer always overdue (a loaded machine), a shared
        # mutually exclusive group let the timer starve them. The lock keeps them between ticks instead.
        self._lock = threading.Lock()
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(ResetSim, 'sim/reset', self._on_reset, callback_group=services)
        self.create_service(GetTaskStatus, 'sim/task_status', self._on_task_status, callback_group=services)

        self._clock_offset_ns = 0  # sim time keeps increasing across resets: /clock never jumps back
        self._reset_episode(self._seed)
        # Pacing uses the steady wall clock, so the node works whatever use_sim_time says.
        wall_period = max(self._tick_ns / NS_PER_S / self._rtf, 0.001)
        self._timer = self.create_timer(wall_period, self._on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f'SO-101 sim ready: scene {p.scene}, tick {self._tick_ns / 1e6:.0f} ms, real_time_factor {self._rtf}, '
            f'cameras {list(self._image_pubs)} at {p.camera_rate} Hz {self._image_width}x{self._image_height}'
        )

    @property
    def sim(self) -> So101PickPlaceSim:
        """The simulation (read-only use from outside; the node owns stepping)."""
        return self._sim

    def now_ns(self) -> int:
        """Return the current sim time in ns, as published on /clock."""
        return self._clock_offset_ns + int(round(self._sim.time * NS_PER_S))

    def _reset_episode(self, seed: int) -> None:
        # The reset takes one tick of sim time: its joint state must not repeat the last tick's stamp.
        self._clock_offset_ns = self.now_ns() + self._tick_ns
        self._seed = seed
        self._sim.reset(seed)
        self._desired = self._sim.joint_targets()
        self._applied = self._desired.copy()
        self._trajectory: ActiveTrajectory | None = None
        self._next_joint_ns = self._next_camera_ns = self.now_ns()
        self._wall_anchor: float | None = None  # set by the first timer call: setup time is not lag
        self._ticks_since_anchor = 0
        goals = self._sim.goal_positions()
        self._goal_pub.publish(Float64MultiArray(data=[float(v) for g in self._sim.scene.goals for v in goals[g.name]]))
        self._task_pub.publish(String(data=self._sim.task.name))
        self._publish_outputs()

    def _on_timer(self) -> None:
        with self._lock:
            if self._wall_anchor is None:
                self._wall_anchor = time.monotonic()
            due = int((time.monotonic() - self._wall_anchor) * self._rtf * NS_PER_S / self._tick_ns)
            for _ in range(min(due - self._ticks_since_anchor, _MAX_TICKS_PER_CALLBACK)):
                self._tick()
            if due - self._ticks_since_anchor > 10 * _MAX_TICKS_PER_CALLBACK:
                # Too far behind: re-anchor instead of bursting, and say so once in a while.
                self.get_logger().warn(
                    'sim cannot keep up with real_time_factor; running slower', throttle_duration_sec=10.0
                )
                self._wall_anchor, self._ticks_since_anchor = time.monotonic(), 0

    def _tick(self) -> None:
        now = self.now_ns()
        if self._trajectory is not None:
            self._desired = self._trajectory.sample(now)
            if self._trajectory.finished(now):
                self._trajectory = None
        max_delta = self._max_joint_speed * self._tick_ns / NS_PER_S
        self._applied = self._sim.set_joint_targets(limit_step(self._applied, self._desired, max_delta))
        self._sim.step(self._physics_steps)
        self._ticks_since_anchor += 1
        self._publish_outputs()

    def _publish_outputs(self) -> None:
        now = self.now_ns()
        stamp = ns_to_stamp(now)
        self._clock_pub.publish(ClockMsg(clock=stamp))
        if now >= self._next_joint_ns:
            self._next_joint_ns += self._joint_state_period_ns * max(
                1, (now - self._next_joint_ns) // self._joint_state_period_ns + 1
            )
            msg = JointState(
                name=list(self._sim.joint_names),
                position=self._sim.joint_positions().tolist(),
                velocity=self._sim.joint_velocities().tolist(),
                effort=self._sim.joint_efforts().tolist(),
            )
            msg.header.stamp = stamp
            self._joint_pub.publish(msg)
            self._cube_pub.publish(Float64MultiArray(data=self._sim.extra_state().tolist()))
        if self._camera_period_ns and now >= self._next_camera_ns:
            self._next_camera_ns += self._camera_period_ns * max(
                1, (now - self._next_camera_ns) // self._camera_period_ns + 1
            )
            for camera, publisher in self._image_pubs.items():
                frame = self._sim.render(camera, self._image_height, self._image_width)
                msg = numpy_to_image(frame, 'rgb8')
                msg.header.stamp = stamp
                msg.header.frame_id = f'{camera}_camera'
                publisher.publish(msg)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            self._trajectory = trajectory_from_msg(
                msg, self._sim.joint_names, self._desired, self._sim.joint_limits, self.now_ns()
            )
        except CommandError as error:
            self.get_logger().warn(f'rejected joint trajectory: {error}', throttle_duration_sec=1.0)

    def _on_forward_command(self, msg: Float64MultiArray) -> None:
        try:
            self._desired = validate_positions(np.asarray(msg.data), self._sim.joint_limits)
        except CommandError as error:
            self.get_logger().warn(f'rejected forward position command: {error}', throttle_duration_sec=1.0)
            return
        self._trajectory = None  # the newest command wins, as with one active controller

    def _on_reset(self, request: ResetSim.Request, response: ResetSim.Response) -> ResetSim.Response:
        seed = request.seed if request.seed >= 0 else self._seed + 1
        with self._lock:
            self._reset_episode(int(seed))
            response.stamp = ns_to_stamp(self.now_ns())
        response.success, response.seed = True, int(seed)
        response.message = (
            f'reset with seed {seed}: task {self._sim.task.name}; '
            f'cube at {np.round(self._sim.cube_position(), 3).tolist()}'
        )
        self.get_logger().info(response.message)
        return response

    def _on_task_status(
        self, request: GetTaskStatus.Request, response: GetTaskStatus.Response
    ) -> GetTaskStatus.Response:
        with self._lock:
            status = self._sim.task_status()
        response.success = status.success
        response.cube_lift = status.cube_lift
        response.distance_to_goal = status.distance_to_goal
        response.episode_time = status.episode_time
        response.message = status.message
        return response

    def task_status(self, task: TaskDef | None = None) -> TaskStatus:
        """Judge a task (default: the episode's) on the current state, between ticks (in-process evaluation)."""
        with self._lock:
            return self._sim.task_status(task)

    def destroy_node(self) -> None:
        """Release the renderer's GL contexts with the node."""
        if self._sim is not None:
            self._sim.close()
            self._sim = None
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the sim bridge until SIGINT/SIGTERM (ros2 run adamoe_ros sim_bridge_node)."""
    return run_node(SimBridgeNode, args, startup_errors=(ParameterError,))


if __name__ == '__main__':
    raise SystemExit(main())
