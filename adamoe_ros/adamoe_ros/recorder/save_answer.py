"""recorder/save's answer for a saved episode: written by the recorder node, read by whoever counts its frames.

Kept light (no LeRobot import) so that harnesses, tests and benchmarks parse it without loading the recorder.
"""

import re

_FRAME_COUNTS = re.compile(r'(\d+) frames, (\d+) dropped')


def saved_answer(episode_index: int, frames: int, dropped: int, seconds: float, received: str) -> str:
    """Return the answer's text: the episode, its frames kept and dropped, the save time, the camera messages heard."""
    return (
        f'saved episode {episode_index}: {frames} frames, {dropped} dropped, in {seconds:.2f} s; '
        f'camera messages received: {received}'
    )


def saved_frame_counts(message: str) -> tuple[int, int]:
    """Return (frames kept, frames dropped) from a saved episode's answer."""
    match = _FRAME_COUNTS.search(message)
    if match is None:
        raise ValueError(f'not a recorder/save answer for a saved episode: {message!r}')
    return int(match[1]), int(match[2])
