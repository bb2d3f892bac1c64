"""The engine in its own process: same chunks as in-process, errors raised here, a dead child a clear error, and
nothing left behind (no child process, no shared-memory block) after close or after the parent dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_policy_support import engine_children

from adamoe_ros.bundles import PICK_PLACE
from adamoe_ros.engine import (
    BundleError,
    EngineProcess,
    EngineProcessError,
    Observation,
    PolicyBackend,
    PolicyEngine,
)

DEMO = PICK_PLACE
SHM = Path('/dev/shm')


@pytest.fixture(scope='module')
def engine():
    return PolicyEngine.from_bundle(DEMO)


@pytest.fixture(scope='module')
def remote():
    with EngineProcess(DEMO) as process:
        yield process


def camera_sized(spec, seed: int, hw: tuple[int, int] = (480, 640)) -> Observation:
    rng = np.random.default_rng(seed)
    images = {cam: rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for cam in spec.camera_names}
    return Observation(images, rng.normal(0, 0.3, spec.state_dim).astype(np.float32), 'pick up the cube')


def gone(pid: int, timeout: float) -> bool:
    """True once no process has this pid (it was reaped), within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_engine_process_returns_the_engines_chunks(engine, remote):
    assert isinstance(remote, PolicyBackend)
    assert remote.spec.bundle_id == engine.spec.bundle_id and remote.rtc == engine.rtc
    for seed, hw in ((0, (480, 640)), (1, (128, 128)), (2, (480, 640))):  # the image block is reused and regrown
        observation = camera_sized(engine.spec, seed, hw)
        here = engine.infer(observation, noise_seed=seed)
        there = remote.infer(observation, noise_seed=seed)
        np.testing.assert_array_equal(there.actions, here.actions)
        assert set(there.timings) == set(here.timings)
        np.testing.assert_array_equal(there.routing.token_fraction, here.routing.token_fraction)
    prefix = here.actions[5:]
    guided_here = engine.infer(observation, prefix_actions=prefix, inference_delay=2, noise_seed=3)
    guided_there = remote.infer(observation, prefix_actions=prefix, inference_delay=2, noise_seed=3)
    np.testing.assert_array_equal(guided_there.actions, guided_here.actions)


def test_engine_errors_are_raised_in_the_caller_and_the_process_keeps_serving(remote):
    observation = camera_sized(remote.spec, 4)
    observation.state = np.full(remote.spec.state_dim, np.nan, np.float32)
    with pytest.raises(ValueError, match='state contains NaN'):
        remote.infer(observation)
    with pytest.raises(ValueError, match='prefix_actions'):
        remote.infer(camera_sized(remote.spec, 4), prefix_actions=np.zeros((3, 2)))
    assert np.all(np.isfinite(remote.infer(camera_sized(remote.spec, 5)).actions))


def test_a_bad_bundle_raises_its_bundle_error_and_leaves_no_child(tmp_path):
    before = engine_children()
    with pytest.raises(BundleError, match='bundle.json'):
        EngineProcess(tmp_path)
    assert engine_children() == before


def test_a_killed_engine_process_is_a_clear_error_and_close_cleans_up():
    reasons = []
    process = EngineProcess(DEMO, on_exit=reasons.append)
    pid = process.pid
    observation = camera_sized(process.spec, 6)
    process.infer(observation)
    block = SHM / process._block.name
    assert block.exists()
    os.kill(pid, signal.SIGKILL)
    for _ in range(2):  # this call and every later one
        with pytest.raises(EngineProcessError, match=f'engine process \\(pid {pid}\\) was killed by SIGKILL'):
            process.infer(observation)
    deadline = time.monotonic() + 5.0
    while not reasons and time.monotonic() < deadline:  # the watcher thread calls on_exit
        time.sleep(0.01)
    assert reasons == [f'engine process (pid {pid}) was killed by SIGKILL']  # told once, unasked
    process.close()
    process.close()
    assert gone(pid, 5.0) and not block.exists()


def test_close_stops_the_child_and_frees_the_block():
    process = EngineProcess(DEMO)
    pid = process.pid
    process.infer(camera_sized(process.spec, 7))
    block = SHM / process._block.name
    process.close()
    assert gone(pid, 5.0) and not block.exists()
    with pytest.raises(EngineProcessError, match='closed'):
        process.infer(camera_sized(process.spec, 7))


def test_the_child_exits_when_its_parent_dies():
    code = (
        'import os, sys; from adamoe_ros.engine import EngineProcess\n'
        f'p = EngineProcess({str(DEMO)!r}); print(p.pid, flush=True); sys.stdin.readline(); os._exit(9)\n'
    )
    parent = subprocess.Popen(
        [sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # running
        parent.kill()  # no close(), no atexit: only the closed socket tells the child
        parent.wait(10)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and Path(f'/proc/{child}').exists():
            if Path(f'/proc/{child}/stat').read_text().rsplit(')', 1)[1].split()[0] == 'Z':
                break  # exited; only waiting for init to reap it
            time.sleep(0.05)
        else:
            assert not Path(f'/proc/{child}').exists(), 'engine process outlived its parent'
    finally:
        parent.kill()
