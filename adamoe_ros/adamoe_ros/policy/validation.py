"""Checks on the content of every input message; a bad message raises InputRejectedError and changes nothing.

Each check runs once, on arrival: the buffer holds only values that passed (stamps are checked there). Only the
colour conversion of a raw camera image waits until an inference takes the frame (CameraFrame).
"""

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from adamoe_ros.ros_image import (
    ImageConversionError,
    array_to_rgb8,
    check_colour_encoding,
    decode_compressed,
    image_to_numpy,
)


class InputRejectedError(ValueError):
    """An input message is malformed; the message says what is wrong with it, `rule` which check refused it."""

    def __init__(self, problem: str, rule: str = 'content') -> None:
        """Refuse a message for `problem`, found by `rule` (content, or one of the stamp rules)."""
        super().__init__(problem)
        self.rule = rule


class CameraFrame:
    """A camera image that passed every check, turned into RGB only if inference takes it.

    A raw image is kept as a view of the message's data: its checks read only the header, and its colour
    conversion (none for rgb8) waits for a snapshot, so frames replaced before any inference took them cost
    neither a copy nor a conversion. A compressed image is decoded on arrival: decoding is its only check.
    """

    def __init__(self, pixels: np.ndarray, encoding: str) -> None:
        """Hold `pixels` as image_to_numpy returns them for `encoding` (a colour encoding)."""
        self._pixels = pixels
        self._encoding = encoding
        self._rgb: np.ndarray | None = None
        self.taken = False  # set by the observation buffer when a snapshot takes this frame

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self._pixels.shape[:2]

    def rgb(self) -> np.ndarray:
        """Return the uint8 RGB (H, W, 3) image, converted on the first call (for rgb8 a view of the message data)."""
        if self._rgb is None:
            self._rgb = array_to_rgb8(self._pixels, self._encoding)
        return self._rgb


def check_camera_image(msg: Image | CompressedImage, max_side: int) -> CameraFrame:
    """Check a camera message (encoding, layout, size) and return it as a CameraFrame; InputRejectedError if bad."""
    raw = isinstance(msg, Image)
    if raw and (msg.height > max_side or msg.width > max_side):
        raise InputRejectedError(f'image {msg.width}x{msg.height} exceeds max_image_side {max_side}')
    if not raw and len(msg.data) > 3 * max_side * max_side:
        raise InputRejectedError(f'compressed image of {len(msg.data)} bytes is larger than any allowed image')
    try:
        frame = CameraFrame(image_to_numpy(msg), _checked_colour(msg.encoding)) if raw else _decoded(msg)
    except ImageConversionError as err:
        raise InputRejectedError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - a decoder error on random bytes must not escape
        raise InputRejectedError(f'cannot decode image: {err}') from None
    # A compressed image tells its size only once decoded.
    if frame.shape[0] > max_side or frame.shape[1] > max_side:
        raise InputRejectedError(f'image {frame.shape[1]}x{frame.shape[0]} exceeds max_image_side {max_side}')
    return frame


def _decoded(msg: CompressedImage) -> CameraFrame:
    return CameraFrame(decode_compressed(msg), 'rgb8')


def _checked_colour(encoding: str) -> str:
    check_colour_encoding(encoding)
    return encoding


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
