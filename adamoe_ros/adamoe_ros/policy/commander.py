"""Which command an active policy sends at a control tick, and from which reference it ramps.

No ROS here: the node calls this with its command lock held, from the control timer, the inference thread (the
trajectory) and the clock-jump callback.
"""

import numpy as np

from adamoe_ros.policy.chunk_queue import ActionQueue
from adamoe_ros.policy.inputs import JOINT_STATE_STREAM, ObservationBuffer
from adamoe_ros.policy.safety import SafetyFilter, UnsafeCommandError
from adamoe_ros.ros_env import NS_PER_S


class Commander:
    """The queued plan made safe, one command per control tick, ramping from a trustworthy reference."""

    def __init__(
        self, queue: ActionQueue, safety: SafetyFilter, buffer: ObservationBuffer, period_s: float, dry_run: bool
    ) -> None:
        """Command from `queue` through `safety` every `period_s`; in a dry run nothing counts as commanding."""
        self._queue = queue
        self._safety = safety
        self._buffer = buffer
        self._period_s = period_s
        self._dry_run = dry_run
        self.commanding = False
        self.stale_events = 0  # times commanding stopped because an input went stale
        self._last_command: np.ndarray | None = None  # the reference of the next command; None: (re)start
        self._last_command_ns: int | None = None  # when it was sent; a restart ramps from a measurement since

    def next_command(self, now: int) -> np.ndarray | None:
        """Return the safe command for now, or None (nothing queued, no fresh reference yet).

        Raises UnsafeCommandError (after dropping the plan) when the target cannot be made safe.
        """
        target = self._queue.sample(now)
        if target is None:
            self.commanding = False
            return None
        reference = self.reference(now)
        if reference is None:
            return None
        try:
            command = self._safety.limit(target, reference, self._period_s)
        except UnsafeCommandError:
            self.drop_plan()
            raise
        self._last_command, self._last_command_ns = command, now
        self.commanding = not self._dry_run
        return command

    def reference(self, now: int) -> np.ndarray | None:
        """Return where the next command starts.

        That is the last command or, on a (re)start, a fresh measurement taken since the last command was sent:
        an older one would not show where that command left the arm.
        """
        if self._last_command is not None:
            return self._last_command
        return self._buffer.fresh(JOINT_STATE_STREAM, now, measured_since_ns=self._last_command_ns)

    def planned_trajectory(self, now: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the queued future (times, targets) made safe point by point, None without a reference.

        Raises UnsafeCommandError when a point cannot be made safe.
        """
        times, targets = self._queue.future(now)
        reference = self.reference(now)
        if times.size == 0 or reference is None:
            return None
        steps = np.diff(np.concatenate([[now], times])) / NS_PER_S
        return times, self._safety.limit_sequence(targets, reference, steps)

    def hold(self, now: int) -> np.ndarray | None:
        """Return the measured position to command once after commanding (None: nothing to hold, or no fresh one).

        Only from a fresh measurement: an old one could be a jump.
        """
        if self._dry_run or self._last_command is None:
            return None
        measured = self._buffer.fresh(JOINT_STATE_STREAM, now)
        if measured is None:
            return None
        self._last_command = None
        return self._safety.clamp_position(measured)

    def stop_on_stale(self) -> None:
        """Stop commanding on inputs no longer valid."""
        if self.commanding:
            self.stale_events += 1
        self.drop_plan()

    def drop_plan(self) -> None:
        """Drop the queued actions (voiding any chunk being planned) and the command reference."""
        self._queue.clear()
        self._last_command = None
        self.commanding = False

    def restart(self) -> None:
        """Drop the plan and forget when the last command was sent: the next one ramps from any fresh measurement."""
        self.drop_plan()
        self._last_command_ns = None
