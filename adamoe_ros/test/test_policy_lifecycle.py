"""Lifecycle transitions of the policy node driven through its standard lifecycle services from another node."""

import time

import numpy as np
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from test_policy_support import LOWER, UPPER, Harness, policy_overrides, start_inputs

MEASURED = np.array([0.2, -0.3, 0.4, 0.1, 0.0, 1.9])  # gripper beyond its 1.5 limit: the hold is clamped


class LifecycleClient:
    """Calls <node>/change_state and <node>/get_state like `ros2 lifecycle set` would."""

    def __init__(self, harness: Harness, target: str) -> None:
        self.change = harness.recorder.create_client(ChangeState, f'/{target}/change_state')
        self.get = harness.recorder.create_client(GetState, f'/{target}/get_state')
        assert self.change.wait_for_service(timeout_sec=5.0) and self.get.wait_for_service(timeout_sec=5.0)

    def transition(self, transition_id: int) -> bool:
        future = self.change.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        return self._result(future).success

    def state(self) -> str:
        return self._result(self.get.call_async(GetState.Request())).current_state.label

    @staticmethod
    def _result(future, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done(), 'lifecycle service did not answer'
        return future.result()


def test_failed_configure_leaves_node_unconfigured_and_alive():
    for name, overrides in (
        ('missing_bundle', policy_overrides(bundle_path='/nonexistent/bundle')),
        ('wrong_robot', policy_overrides(robot_profile='aloha')),  # not the bundle's joints
        ('missing_robot', policy_overrides(robot_profile='')),
        ('bad_mode', policy_overrides(execution_mode='fastest')),
        ('bad_camera', policy_overrides(camera_names=['front', 'top'])),
    ):
        harness = Harness(overrides, node_name=name)
        try:
            client = LifecycleClient(harness, name)
            assert not client.transition(Transition.TRANSITION_CONFIGURE), name
            assert client.state() == 'unconfigured', name
            assert harness.node.status_message().state == 'unconfigured'
        finally:
            harness.close()


def test_full_lifecycle_with_hold_on_deactivate():
    harness = Harness(policy_overrides())
    inputs = start_inputs('--duration', '30', '--positions', *map(str, MEASURED))
    try:
        client = LifecycleClient(harness, 'policy_node')
        recorder = harness.recorder
        assert client.state() == 'unconfigured'
        assert client.transition(Transition.TRANSITION_CONFIGURE) and client.state() == 'inactive'
        time.sleep(1.0)
        assert len(recorder.commands) == 0 and len(recorder.chunks) == 0  # nothing while inactive
        assert client.transition(Transition.TRANSITION_ACTIVATE) and client.state() == 'active'
        assert harness.wait_for(lambda: len(recorder.chunks) >= 1 and len(recorder.commands) >= 10, 20.0)
        assert client.transition(Transition.TRANSITION_DEACTIVATE) and client.state() == 'inactive'
        hold = np.clip(MEASURED, LOWER, UPPER)

        def held() -> bool:
            with recorder.lock:
                return bool(np.allclose(recorder.commands[-1][1], hold, rtol=1e-7, atol=0))

        assert harness.wait_for(held, 10.0), 'the last command is not the hold'
        count = len(recorder.commands)
        time.sleep(0.5)
        assert len(recorder.commands) == count, 'commands continued after deactivate'
        assert harness.node.status_message().commanding is False
        assert client.transition(Transition.TRANSITION_CLEANUP) and client.state() == 'unconfigured'
        # Configurable again after cleanup.
        assert client.transition(Transition.TRANSITION_CONFIGURE) and client.state() == 'inactive'
        assert client.transition(Transition.TRANSITION_INACTIVE_SHUTDOWN) and client.state() == 'finalized'
    finally:
        inputs.kill()
        inputs.wait()
        harness.close()
