"""Resource use of a process from Linux /proc: resident memory, threads, open file descriptors."""

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessStats:
    """One reading of a process's resources."""

    rss_kb: int
    threads: int
    fds: int


def read_process_stats(pid: int) -> ProcessStats:
    """Read VmRSS and Threads from /proc/<pid>/status and count /proc/<pid>/fd; OSError if it is gone."""
    fields = dict(line.split(':', 1) for line in Path(f'/proc/{pid}/status').read_text().splitlines() if ':' in line)
    return ProcessStats(
        rss_kb=int(fields['VmRSS'].split()[0]), threads=int(fields['Threads']), fds=len(os.listdir(f'/proc/{pid}/fd'))
    )
