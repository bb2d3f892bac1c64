"""EngineProcess: a PolicyEngine in a child process, so inference never holds the caller's interpreter.

In a thread of the policy node, inference shares one GIL with the control timer and the camera callbacks: whenever
it runs Python code (preprocessing, the Euler loop) a waiting timer callback gets the interpreter only at the next
switch (5 ms by default). In its own process it shares nothing but the CPUs. Each call copies the observation's
images once into a shared-memory block the child reads in place; the rest of the request and the small result (the
chunk, timings, expert usage) go through a pipe.

A child that dies (killed, out of memory, a crash in native code) turns the call in progress and every later one
into EngineProcessError, and is reported at once to an `on_exit` callback (the policy node holds). close() stops
the child and frees the block; a child whose parent dies sees its pipe close and exits.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

from adamoe_contract.backend import InferenceResult, Observation
from adamoe_ros.engine.engine import PolicyEngine

_STOP = None  # the request that ends the child
_BLOCK_ALIGN = 1 << 20  # the image block grows in whole MiB, so camera sizes changing by a little reuse it


class EngineProcessError(RuntimeError):
    """The engine process died or did not answer; no inference is possible until a new one is started."""


class EngineProcess:
    """Implements adamoe_contract.backend.PolicyBackend with a PolicyEngine in a spawned child process."""

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 1,
        nice: int = 0,
        on_exit: Callable[[str], None] | None = None,
        start_timeout: float = 300.0,
    ) -> None:
        """Start the child and load the bundle there (PolicyEngine.from_bundle's errors are raised here).

        nice > 0 lowers the child's CPU priority, so the caller's timers win the CPU on a busy machine.
        on_exit(reason) is called from a watcher thread when the child ends other than by close().
        """
        context = multiprocessing.get_context('spawn')  # never fork a process that runs DDS threads
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child_conn, str(path), None if providers is None else list(providers), intra_op_threads, nice),
            name='adamoe_engine',
            daemon=True,  # multiprocessing ends it when this interpreter exits without close()
        )
        self._process.start()
        child_conn.close()
        self._lock = threading.Lock()
        self._block: SharedMemory | None = None
        self._failure = ''
        self._closing = False
        try:
            reply = self._receive(start_timeout)
        except BaseException:
            self.close()
            raise
        if reply[0] == 'error':
            self.close()
            raise reply[1]
        _, self.spec, self.rtc, self.providers = reply
        if on_exit is not None:
            threading.Thread(target=self._watch, args=(on_exit,), name='engine_watch', daemon=True).start()

    @property
    def pid(self) -> int | None:
        """Process id of the child (None once closed)."""
        return self._process.pid if self._process is not None else None

    def infer(
        self,
        observation: Observation,
        prefix_actions: np.ndarray | None = None,
        inference_delay: int = 0,
        noise_seed: int | None = None,
        noise: np.ndarray | None = None,
    ) -> InferenceResult:
        """PolicyBackend.infer in the child; its errors are raised here, EngineProcessError if it died."""
        with self._lock:
            if self._failure:
                raise EngineProcessError(self._failure)
            layout = self._write_images(observation.images)
            request = (
                self._block.name,
                layout,
                np.asarray(observation.state),
                observation.instruction,
                {
                    'prefix_actions': prefix_actions,
                    'inference_delay': inference_delay,
                    'noise_seed': noise_seed,
                    'noise': noise,
                },
            )
            try:
                self._conn.send(request)
            except OSError:
                pass  # the child is gone: _receive says how it ended
            status, value = self._receive(None)
        if status == 'error':
            raise value
        return value

    def close(self, timeout: float = 10.0) -> None:
        """Stop the child (after its current call), then free the image block; safe to call twice."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            self._closing = True
            self._failure = self._failure or 'engine process closed'
            try:
                self._conn.send(_STOP)
            except OSError:
                pass
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)
            self._conn.close()
            if self._block is not None:
                self._block.close()
                self._block.unlink()
                self._block = None

    def _write_images(self, images: dict[str, np.ndarray]) -> list[tuple[str, int, tuple[int, ...]]]:
        """Copy the images into the block (grown if needed); return (camera, offset, shape) of each."""
        arrays = {camera: np.asarray(image) for camera, image in images.items()}
        for camera, array in arrays.items():
            if array.dtype != np.uint8:
                raise ValueError(f"camera '{camera}': expected uint8 HxWx3 RGB, got {array.dtype} {array.shape}")
        needed = sum(array.nbytes for array in arrays.values())
        if self._block is None or self._block.size < needed:
            if self._block is not None:
                self._block.close()
                self._block.unlink()
            size = max(_BLOCK_ALIGN, -(-needed // _BLOCK_ALIGN) * _BLOCK_ALIGN)
            self._block = SharedMemory(create=True, size=size)
        layout, offset = [], 0
        for camera, array in arrays.items():
            np.ndarray(array.shape, np.uint8, buffer=self._block.buf, offset=offset)[...] = array
            layout.append((camera, offset, array.shape))
            offset += array.nbytes
        return layout

    def _watch(self, on_exit: Callable[[str], None]) -> None:
        process = self._process
        wait([process.sentinel])
        if self._closing:
            return
        process.join(1.0)
        self._failure = f'engine process (pid {process.pid}) {_describe_exit(process.exitcode)}'
        on_exit(self._failure)

    def _receive(self, timeout: float | None) -> tuple:
        """Return the child's next reply; EngineProcessError when it died first or gave none within timeout."""
        ready = wait([self._conn, self._process.sentinel], timeout)
        if self._conn in ready:
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass
        if not ready:
            self._failure = f'engine process (pid {self._process.pid}) gave no answer within {timeout:.0f} s'
        else:
            self._process.join(1.0)
            self._failure = f'engine process (pid {self._process.pid}) {_describe_exit(self._process.exitcode)}'
        raise EngineProcessError(self._failure)

    def __enter__(self) -> EngineProcess:
        """Use as a context manager that closes the child."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the child."""
        self.close()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return 'stopped answering'
    if code < 0:
        return f'was killed by {signal.Signals(-code).name}'
    return f'exited with status {code}'


def _serve(conn: Connection, path: str, providers: list[str] | None, threads: int, nice: int) -> None:
    """Body of the child: load the bundle, then answer inference requests until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the whole group: the parent decides
    if nice > 0:
        os.nice(nice)
    try:
        engine = PolicyEngine.from_bundle(path, providers=providers, intra_op_threads=threads, warmup=True)
    except Exception as err:  # noqa: BLE001 - handed to the parent, which raises it
        conn.send(('error', _sendable(err)))
        return
    conn.send(('ready', engine.spec, engine.rtc, engine.providers))
    block: SharedMemory | None = None
    try:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return  # the parent is gone
            if request is _STOP:
                return
            name, layout, state, instruction, options = request
            if block is None or block.name != name:
                if block is not None:
                    block.close()
                block = SharedMemory(name=name)
            conn.send(_answer(engine, block, layout, state, instruction, options))
    finally:
        if block is not None:
            block.close()


def _answer(engine: PolicyEngine, block: SharedMemory, layout: list, state, instruction: str, options: dict) -> tuple:
    images = {camera: np.ndarray(shape, np.uint8, buffer=block.buf, offset=offset) for camera, offset, shape in layout}
    try:
        return 'ok', engine.infer(Observation(images=images, state=state, instruction=instruction), **options)
    except Exception as err:  # noqa: BLE001 - raised again in the parent
        return 'error', _sendable(err)
    finally:
        del images  # views of the block must go before it can be closed


def _sendable(err: Exception) -> Exception:
    """`err` if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001
        return RuntimeError(f'{type(err).__name__}: {err}')
