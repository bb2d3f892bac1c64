"""Run slow dataset work (PNG staging, video encoding) on one worker thread and await it from rclpy callbacks."""

import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

from rclpy.node import Node

T = TypeVar('T')


class DatasetIoWorker:
    """One FIFO worker thread: frames and saves run in submission order, never on the executor thread."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='recorder_io')

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future:
        """Queue fn(*args) behind everything submitted before."""
        return self._pool.submit(fn, *args)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the worker thread and wait for it (for set-up and tear-down)."""
        return self._pool.submit(fn, *args).result()

    def shutdown(self) -> None:
        """Finish the queued work, then stop the thread."""
        self._pool.shutdown(wait=True)


async def await_on_executor(node: Node, future: concurrent.futures.Future) -> Any:
    """Await a worker-thread future inside an rclpy coroutine callback without blocking or busy-waiting.

    The executor parks a pending coroutine until something wakes its wait set, so the result is forwarded into an
    executor future and the executor is woken explicitly.
    """
    executor = node.executor
    if executor is None:
        return future.result()
    ros_future = executor.create_future()

    def forward(done: concurrent.futures.Future) -> None:
        ros_future.set_result(done)
        executor.wake()

    future.add_done_callback(forward)
    done = await ros_future
    return done.result()
