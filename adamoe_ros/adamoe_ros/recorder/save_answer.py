"""recorder/save's answer for a saved episode: written by the recorder node, read by whoever counts its frames.

Kept light (no LeRobot import) so that harnesses, tests and benchmarks parse it without loading the recorder.
"""

import re

_FRAME_COUNTS = re.compile(r'(\d+) frames, (\d+) dropped')
_RECEIVED = 'camera messages received: '
_CAMERA_COUNT = re.compile(r'(\S+) (\d+)')


def saved_answer(episode_index: int, frames: int, dropped: int, seconds: float, received: dict[str, int]) -> str:
    """Return the answer's text: the episode, its frames kept and dropped, the save time, the camera messages heard."""
    cameras = ', '.join(f'{camera} {count}' for camera, count in received.items())
    saved = f'saved episode {episode_index}: {frames} frames, {dropped} dropped, in {seconds:.2f} s'
    return f'{saved}; {_RECEIVED}{cameras}'


def saved_frame_counts(message: str) -> tuple[int, int]:
    """Return (frames kept, frames dropped) from a saved episode's answer."""
    match = _FRAME_COUNTS.search(message)
    if match is None:
        raise ValueError(f'not a recorder/save answer for a saved episode: {message!r}')
    return int(match[1]), int(match[2])


def saved_camera_counts(message: str) -> dict[str, int]:
    """Return the camera messages received during the episode, per camera, from a saved episode's answer."""
    if _RECEIVED not in message:
        raise ValueError(f'not a recorder/save answer for a saved episode: {message!r}')
    return {camera: int(count) for camera, count in _CAMERA_COUNT.findall(message.split(_RECEIVED, 1)[1])}
