"""EngineProcess: a PolicyEngine in a child process, so inference never holds the caller's interpreter.

In a thread of the policy node, inference shares one GIL with the control timer and the camera callbacks: whenever
it runs Python code (preprocessing, the Euler loop) a waiting timer callback gets the interpreter only at the next
switch (5 ms by default). In its own process it shares nothing but the CPUs. Each call copies the observation's
images once into a shared-memory block the child reads in place; the rest of the request and the small result (the
chunk, timings, expert usage) go through a socket pair.

A child that dies (killed, out of memory, a crash in native code) turns the call in progress and every later one
into EngineProcessError, and is reported at once to an `on_exit` callback (the policy node holds). close() stops
the child and frees the block; a child whose parent dies sees its socket close and exits.
"""

from __future__ import annotations

import json
import mmap
import os
import pickle
import signal
import socket
import subprocess
import sys
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
# The child is a fresh interpreter that imports only the engine (not the caller's main module, as
# multiprocessing's spawn would): python -c _CHILD <socket fd> <json arguments>.
_CHILD = 'import sys; from adamoe_ros.engine.process import serve; serve(int(sys.argv[1]), sys.argv[2])'


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
        ours, theirs = socket.socketpair()
        arguments = json.dumps([str(path), None if providers is None else list(providers), intra_op_threads, nice])
        with theirs:
            self._process: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, '-c', _CHILD, str(theirs.fileno()), arguments], pass_fds=(theirs.fileno(),)
            )
        self._conn = Connection(ours.detach())
        self._exited = os.pidfd_open(self._process.pid)  # readable once the child has ended
        self._lock = threading.Lock()
        self._block: SharedMemory | None = None
        self._failure = ''
        self._closing = False
        self._watcher: threading.Thread | None = None
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
            self._watcher = threading.Thread(target=self._watch, args=(on_exit,), name='engine_watch', daemon=True)
            self._watcher.start()

    @property
    def pid(self) -> int | None:
        """Process id of the child (None once closed)."""
        return None if self._process is None else self._process.pid

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
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
            self._conn.close()
            if self._watcher is not None:
                self._watcher.join(timeout)  # it saw the exit; only then may its pidfd go
            os.close(self._exited)
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
        wait([self._exited])
        if self._closing:
            return
        self._failure = f'engine process (pid {process.pid}) {_describe_exit(process.wait())}'
        on_exit(self._failure)

    def _receive(self, timeout: float | None) -> tuple:
        """Return the child's next reply; EngineProcessError when it died first or gave none within timeout."""
        ready = wait([self._conn, self._exited], timeout)
        if self._conn in ready:
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass
        if not ready:
            self._failure = f'engine process (pid {self._process.pid}) gave no answer within {timeout:.0f} s'
        else:
            self._failure = f'engine process (pid {self._process.pid}) {_describe_exit(self._process.wait())}'
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


def serve(fd: int, arguments: str) -> None:
    """Body of the child: load the bundle, then answer inference requests until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the whole group: the parent decides
    path, providers, threads, nice = json.loads(arguments)
    conn = Connection(fd)
    if nice > 0:
        os.nice(nice)
    try:
        engine = PolicyEngine.from_bundle(path, providers=providers, intra_op_threads=threads, warmup=True)
    except Exception as err:  # noqa: BLE001 - handed to the parent, which raises it
        conn.send(('error', _sendable(err)))
        return
    conn.send(('ready', engine.spec, engine.rtc, engine.providers))
    block: tuple[str, mmap.mmap] | None = None
    try:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return  # the parent is gone
            if request is _STOP:
                return
            name, layout, state, instruction, options = request
            if block is None or block[0] != name:
                if block is not None:
                    block[1].close()
                block = (name, _attach(name))
            conn.send(_answer(engine, block[1], layout, state, instruction, options))
    finally:
        if block is not None:
            block[1].close()


def _attach(name: str) -> mmap.mmap:
    """Map the parent's block (not through SharedMemory, whose resource tracker would unlink it when we exit)."""
    fd = os.open(f'/dev/shm/{name}', os.O_RDONLY)
    try:
        return mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def _answer(engine: PolicyEngine, block: mmap.mmap, layout: list, state, instruction: str, options: dict) -> tuple:
    images = {camera: np.ndarray(shape, np.uint8, buffer=block, offset=offset) for camera, offset, shape in layout}
    try:
        return 'ok', engine.infer(Observation(images=images, state=state, instruction=instruction), **options)
    except Exception as err:  # noqa: BLE001 - raised again in the parent
        return 'error', _sendable(err)
    finally:
        del images  # views of the block must go before it can be closed


def _sendable(err: Exception) -> Exception:
    """Return `err` if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001
        return RuntimeError(f'{type(err).__name__}: {err}')
