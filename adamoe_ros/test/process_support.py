"""Stopping a node process the way `ros2 launch` does, for tests that run nodes as subprocesses."""

import signal
import subprocess


def stop(proc: subprocess.Popen, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> tuple[int, str]:
    """Send `sig`, wait for the exit and return (exit status, output); a process that outlives `timeout` is killed
    and the test fails (an orderly stop that hangs is a bug, and a leftover process would disturb later tests)."""
    proc.send_signal(sig)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise AssertionError(f'{proc.args} ignored {sig.name} for {timeout} s; output: {output}') from None
    if isinstance(output, bytes):
        output = output.decode(errors='replace')
    return proc.returncode, output or ''
