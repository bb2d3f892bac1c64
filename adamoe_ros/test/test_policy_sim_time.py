"""On a simulated /clock (use_sim_time): ages follow the node clock, a stale camera stops commands within one
control period, and commands resume with a ramp from the measured position."""

import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from test_policy_support import MAX_VELOCITY, Recorder, SimDriver, policy_overrides

from adamoe_ros.node_main import ExecutorThread
from adamoe_ros.policy.node import PolicyNode
from adamoe_ros.ros_env import NS_PER_S

STEP_NS = 10_000_000  # simulated time per driver step
PERIOD_NS = 20_000_000  # control period at 50 Hz
MAX_AGE_NS = 300_000_000
MEASURED = np.array([0.1, 0.2, -0.3, 0.4, 0.0, 0.5])


def test_sim_clock_staleness_and_resume():
    context = rclpy.Context()
    rclpy.init(context=context)
    sim = [Parameter('use_sim_time', value=True)]
    node = PolicyNode(context=context, parameter_overrides=policy_overrides(max_image_age=MAX_AGE_NS / NS_PER_S) + sim)
    recorder = Recorder(context=context, parameter_overrides=sim)
    driver = SimDriver(context=context)
    executor = SingleThreadedExecutor(context=context)
    for n in (node, recorder, driver):
        executor.add_node(n)
    spinner = ExecutorThread(executor)
    spinner.start()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        t = 1 * NS_PER_S
        last_frame = gap_start = 3 * NS_PER_S
        gap_end = 4 * NS_PER_S
        command_times: list[int] = []
        seen = 0
        while t < 5 * NS_PER_S:
            frames = (t - NS_PER_S) % (5 * STEP_NS) == 0 and not gap_start < t < gap_end
            if frames and t <= gap_start:
                last_frame = t
            driver.step(t, frames, MEASURED)
            deadline = time.monotonic() + 1.0
            while node.get_clock().now().nanoseconds < t and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.006)  # let the tick of this step run and its command arrive
            with recorder.lock:
                new = recorder.commands[seen:]
            seen += len(new)
            command_times += [t] * len(new)
            t += STEP_NS
        with recorder.lock:
            commands = np.stack([c for _, c in recorder.commands])
        times = np.array(command_times)
        # Ages are in simulated time: the node kept commanding through the whole 2 s of simulated
        # time before the gap however slowly it ran in wall time.
        before = times[times <= gap_start + MAX_AGE_NS + PERIOD_NS + STEP_NS]
        assert before.size > 20 and before.min() < 2 * NS_PER_S
        stopped_at = before.max()
        # Commands stop within one control period of the camera going stale (one driver step of
        # tagging resolution), and not before it went stale.
        assert last_frame + MAX_AGE_NS - PERIOD_NS <= stopped_at <= last_frame + MAX_AGE_NS + PERIOD_NS + STEP_NS
        after = times > gap_start + MAX_AGE_NS + PERIOD_NS + STEP_NS
        assert np.all(times[after] >= gap_end), 'commands were sent while the camera was stale'
        first_resumed = commands[np.argmax(after)]
        assert after.any() and np.all(np.abs(first_resumed - MEASURED) <= MAX_VELOCITY * PERIOD_NS / NS_PER_S + 1e-9)
        assert node.status_message().stale_events >= 1
    finally:
        node.trigger_shutdown()
        spinner.stop()  # before destroying: a spinning executor still adds the nodes' entities
        for n in (node, recorder, driver):
            n.destroy_node()
        rclpy.try_shutdown(context=context)
