"""Named joints out of sensor_msgs/JointState: the one matcher the policy node, recorder and scripted expert use."""

from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import JointState


class JointStateError(ValueError):
    """A JointState does not give the wanted joints (the message says why); nothing of it was used."""


class JointStateMatcher:
    """Picks the wanted joints out of a JointState by name, in the wanted order."""

    def __init__(self, joint_names: Sequence[str], allow_extra_joints: bool = False) -> None:
        """Remember the wanted joint order; joints beyond it are refused unless allowed."""
        self.joint_names = list(joint_names)
        self.allow_extra_joints = allow_extra_joints
        # (names, index) in one attribute, so a reader never pairs one message layout with another's index.
        self._cache: tuple[tuple[str, ...], np.ndarray] | None = None

    def positions(self, msg: JointState) -> np.ndarray:
        """Return float64 positions in the wanted order or raise JointStateError."""
        names = tuple(msg.name)
        n = len(names)
        if len(msg.position) != n:
            raise JointStateError(f'{n} names but {len(msg.position)} positions')
        for field in ('velocity', 'effort'):
            length = len(getattr(msg, field))
            if length not in (0, n):
                raise JointStateError(f'{n} names but {length} {field} values')
        cache = self._cache
        if cache is None or cache[0] != names:
            cache = self._cache = (names, self._index_for(names))
        values = np.asarray(msg.position, dtype=np.float64)[cache[1]]
        if not np.all(np.isfinite(values)):
            raise JointStateError('non-finite joint position')
        return values

    def _index_for(self, names: tuple[str, ...]) -> np.ndarray:
        if len(set(names)) != len(names):
            raise JointStateError('duplicate joint names')
        missing = [j for j in self.joint_names if j not in names]
        if missing:
            raise JointStateError(f'lacks joints {missing} (missing from {list(names)[:8]})')
        extra = [j for j in names if j not in self.joint_names]
        if extra and not self.allow_extra_joints:
            raise JointStateError(f'unknown joints {extra[:8]}')
        return np.array([names.index(j) for j in self.joint_names], dtype=np.intp)
