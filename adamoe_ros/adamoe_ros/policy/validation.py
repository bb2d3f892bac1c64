"""Checks on the content of every input message; a bad message raises InputRejectedError and changes nothing.

Each check runs once, on arrival: the buffer holds only values that passed (stamps are checked there).
"""

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from adamoe_ros.ros_image import ImageConversionError, to_rgb8


class InputRejectedError(ValueError):
    """An input message is malformed; the message says what is wrong with it."""


def camera_image_to_rgb(msg: Image | CompressedImage, max_side: int) -> np.ndarray:
    """Decode a camera message to uint8 RGB (H, W, 3), refusing bad encodings and sizes."""
    if isinstance(msg, Image):
        if msg.height > max_side or msg.width > max_side:
            raise InputRejectedError(f'image {msg.width}x{msg.height} exceeds max_image_side {max_side}')
    elif len(msg.data) > 3 * max_side * max_side:
        raise InputRejectedError(f'compressed image of {len(msg.data)} bytes is larger than any allowed image')
    try:
        rgb = to_rgb8(msg)
    except ImageConversionError as err:
        raise InputRejectedError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - a decoder error on random bytes must not escape
        raise InputRejectedError(f'cannot decode image: {err}') from None
    # to_rgb8 returns a non-empty (H, W, 3) uint8 array; a compressed image tells its size only once decoded.
    if rgb.shape[0] > max_side or rgb.shape[1] > max_side:
        raise InputRejectedError(f'image {rgb.shape[1]}x{rgb.shape[0]} exceeds max_image_side {max_side}')
    return rgb


def check_instruction(text: str, max_length: int) -> str:
    """Return the stripped instruction or raise InputRejectedError when empty, oversized or unprintable."""
    stripped = text.strip()
    if not stripped:
        raise InputRejectedError('empty instruction')
    if len(stripped) > max_length:
        raise InputRejectedError(
            f'instruction of {len(stripped)} characters exceeds max_instruction_length {max_length}'
        )
    if not stripped.isprintable():
        raise InputRejectedError('instruction contains control characters')
    return stripped


def check_extra_state(values: list[float] | np.ndarray, names: list[str]) -> np.ndarray:
    """Return the extra state as float64 or raise InputRejectedError on a length mismatch or non-finite value."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (len(names),):
        raise InputRejectedError(f'{array.size} values, expected {len(names)} ({", ".join(names)})')
    if not np.all(np.isfinite(array)):
        raise InputRejectedError('non-finite extra state value')
    return array
