"""A thread that runs one inference per request, so the executor keeps serving timers meanwhile."""

import os
import threading
from collections.abc import Callable


class InferenceWorker:
    """Runs `job` in its own thread each time `request()` is called while idle."""

    def __init__(
        self, job: Callable[[], None], on_error: Callable[[BaseException], None], name: str, nice: int = 0
    ) -> None:
        """Start the thread; `on_error` receives any exception the job raises (the thread survives it).

        nice > 0 lowers the thread's CPU priority (Linux), so control timers win the CPU on a busy machine.
        """
        self._job = job
        self._nice = nice
        self._on_error = on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True from an accepted request until its run of the job has returned."""
        return self._busy.is_set()

    def request(self) -> bool:
        """Ask for one run of the job; False when one is already pending or running."""
        if self.busy or self._stop.is_set():
            return False
        self._busy.set()
        self._wake.set()
        return True

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread after the current job; True when it has ended within the timeout."""
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        if self._nice > 0:
            try:
                # On Linux the "process" priority of a thread id applies to that thread alone.
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except (OSError, AttributeError):
                pass
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._job()
            except BaseException as err:  # noqa: BLE001 - reported to the node, the robot stays safe
                self._on_error(err)
            finally:
                self._busy.clear()
