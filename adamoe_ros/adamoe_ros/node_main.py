"""Entry points of our executables: spin until SIGINT/SIGTERM, then stop in order.

rclpy's own signal handlers shut the context down from a signal thread while the executor may be inside a callback;
a callback that publishes then fails ("publisher's context is invalid") and the process exits 1 instead of 0. Here
the signal only asks the executor to stop: callbacks in flight finish, the nodes clean up (the recorder discards an
unsaved episode, the policy node holds), and only then is the context shut down.
"""

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def init_without_signal_handlers(args: list[str] | None = None, context: Context | None = None) -> None:
    """rclpy.init, leaving SIGINT/SIGTERM to spin_until_stopped."""
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)


@contextlib.contextmanager
def stop_requested_on_signals() -> Iterator[threading.Event]:
    """Within the block, SIGINT and SIGTERM set the yielded event instead of interrupting (main thread only)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ExecutorThread:
    """Spins an executor in its own thread until stop(), and only then shuts the executor down.

    rclpy's Executor.shutdown() does not wait for a spin() running in another thread (in rclpy 9.1 its wait is
    skipped): it destroys the executor's guard condition under the running loop, which then fails with
    "'NoneType' object has no attribute 'trigger'". So the loop is ended first, then the executor is shut down.
    """

    def __init__(self, executor: Executor, stop: threading.Event | None = None, name: str = 'executor') -> None:
        """Spin until `stop` is set (a new event if None) or the context shuts down; the loop's end sets `stop`."""
        self.executor = executor
        self.stop_requested = stop if stop is not None else threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)

    def start(self) -> 'ExecutorThread':
        """Start spinning; returns self."""
        self._thread.start()
        return self

    def _spin(self) -> None:
        try:
            while not self.stop_requested.is_set() and self.executor.context.ok():
                self.executor.spin_once(timeout_sec=0.1)  # the longest a stop request waits unnoticed
        except ExternalShutdownException:
            pass
        except BaseException as error:  # noqa: BLE001 (handed to the thread that calls stop)
            self._failure = error
        finally:
            self.stop_requested.set()

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop after the callback in flight, shut the executor down; raise what a callback raised."""
        self.stop_requested.set()
        self.executor.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f'{self._thread.name}: a callback did not return within {timeout} s')
        self.executor.shutdown()
        if self._failure is not None:
            raise self._failure


def spin_until_stopped(executor: Executor, stop: threading.Event) -> None:
    """Spin `executor` in a thread until `stop` is set or its context shuts down.

    Returns once every callback in flight has finished; an exception raised by a callback is raised here.
    """
    spinner = ExecutorThread(executor, stop).start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        spinner.stop()


def run_nodes(
    make_nodes: Callable[[], Sequence[Node]],
    args: list[str] | None = None,
    startup_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Body of a node executable: init, build the nodes, spin until a stop signal, destroy them, shut down.

    A construction failure of one of `startup_errors` is printed in one line and gives exit status 2 (a
    configuration problem, not a crash). Returns the exit status.
    """
    init_without_signal_handlers(args)
    nodes: Sequence[Node] = ()
    # Not the MultiThreadedExecutor: in rclpy 9.1 it submits every task still queued in its thread pool again on each
    # wake-up (ros2/rclpy#1452, fixed upstream by #1547, not in the Kilted wheel), so its spin thread holds the GIL.
    # The recorder under it, at its ~230 callbacks/s: 0.89 cores busy while idle (0.12 with this one), GIL stalls up
    # to 1 s, most camera frames lost. The nodes run their slow work (inference, dataset writes) on their own threads.
    executor = SingleThreadedExecutor()
    # Installed before the nodes are built: a stop during a slow construction (MuJoCo, ONNX) is honoured after it.
    with stop_requested_on_signals() as stop:
        try:
            try:
                nodes = make_nodes()
            except startup_errors as error:
                print(f'{sys.argv[0].rsplit("/", 1)[-1]}: {error}', file=sys.stderr, flush=True)
                return 2
            for node in nodes:
                executor.add_node(node)
            spin_until_stopped(executor, stop)
            return 0
        finally:
            for node in nodes:
                node.destroy_node()
            rclpy.try_shutdown()


def run_node(
    make_node: Callable[[], Node], args: list[str] | None = None, startup_errors: tuple[type[Exception], ...] = ()
) -> int:
    """run_nodes for one node."""
    return run_nodes(lambda: [make_node()], args, startup_errors)
