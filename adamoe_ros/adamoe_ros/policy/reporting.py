"""Counts rejected input messages and throttles the warnings about them per topic and problem."""

import re
import threading
import time
from collections import Counter
from collections.abc import Callable

from adamoe_ros.policy.validation import InputRejectedError

_DETAILS = re.compile(r"[-+]?\d[\d.e+-]*|'[^']*'|\[[^\]]*\]")


class RejectionReporter:
    """Counts rejections per topic and rule; warns at most once per throttle period for each (topic, problem)."""

    def __init__(self, warn: Callable[[str], None], throttle_s: float) -> None:
        """Log through `warn`, at most once every throttle_s seconds per topic and problem kind."""
        self._warn = warn
        self._throttle_s = throttle_s
        self._lock = threading.Lock()
        self._last_warned: dict[tuple[str, str], float] = {}
        self._suppressed: Counter[tuple[str, str]] = Counter()
        self.per_topic: Counter[str] = Counter()
        self.per_rule: Counter[tuple[str, str]] = Counter()  # (topic, rule): a too-old frame is not a bad stamp
        self.last_problem = ''

    @property
    def total(self) -> int:
        """Rejected messages on all topics."""
        return sum(self.per_topic.values())

    def reject(self, topic: str, err: ValueError) -> None:
        """Record one message on topic that `err` refused and maybe warn about it."""
        problem = str(err)
        rule = err.rule if isinstance(err, InputRejectedError) else 'content'
        kind = _DETAILS.sub('#', problem)[:48]  # same problem with other numbers or names: one kind
        now = time.monotonic()
        with self._lock:
            self.per_topic[topic] += 1
            self.per_rule[topic, rule] += 1
            self.last_problem = f'{topic}: {problem}'
            key = (topic, kind)
            last = self._last_warned.get(key)
            if last is not None and now - last < self._throttle_s:
                self._suppressed[key] += 1
                return
            suppressed = self._suppressed.pop(key, 0)
            self._last_warned[key] = now
        extra = f' ({suppressed} similar rejections suppressed)' if suppressed else ''
        self._warn(f'rejected message on {topic}: {problem}{extra}')
