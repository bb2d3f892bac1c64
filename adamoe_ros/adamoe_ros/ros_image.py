"""sensor_msgs/Image and CompressedImage <-> numpy without cv_bridge."""

import sys

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

# encoding -> (dtype, channels)
_ENCODINGS: dict[str, tuple[type, int]] = {
    'rgb8': (np.uint8, 3),
    'bgr8': (np.uint8, 3),
    'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1),
    '8UC1': (np.uint8, 1),
    '8UC3': (np.uint8, 3),
    'mono16': (np.uint16, 1),
    '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
}
# Colour encodings and the OpenCV conversion to RGB (None: already RGB).
_COLOUR_CODES: dict[str, int | None] = {
    'rgb8': None,
    'bgr8': cv2.COLOR_BGR2RGB,
    '8UC3': cv2.COLOR_BGR2RGB,
    'rgba8': cv2.COLOR_RGBA2RGB,
    'bgra8': cv2.COLOR_BGRA2RGB,
    'mono8': cv2.COLOR_GRAY2RGB,
    '8UC1': cv2.COLOR_GRAY2RGB,
}


class ImageConversionError(ValueError):
    """The message cannot be turned into an image (unknown encoding, inconsistent sizes)."""


def image_to_numpy(msg: Image) -> np.ndarray:
    """Return the image as an (H, W, C) or (H, W) array; a view of msg.data when rows are unpadded."""
    if msg.encoding not in _ENCODINGS:
        raise ImageConversionError(f'unsupported encoding {msg.encoding!r}')
    dtype, channels = _ENCODINGS[msg.encoding]
    dt = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    row_bytes = msg.width * channels * dt.itemsize
    if msg.height == 0 or msg.width == 0:
        raise ImageConversionError('empty image (height or width is 0)')
    if msg.step < row_bytes or len(msg.data) != msg.step * msg.height:
        raise ImageConversionError(
            f'data size {len(msg.data)} does not match step {msg.step} x height {msg.height} '
            f'(need step >= {row_bytes} for {msg.width} px of {msg.encoding})'
        )
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    if not rows.flags.c_contiguous:
        rows = np.ascontiguousarray(rows)
    img = rows.view(dt).reshape(msg.height, msg.width, channels)
    return img[..., 0] if channels == 1 else img


def to_rgb8(msg: Image | CompressedImage) -> np.ndarray:
    """Decode a colour camera message to a contiguous uint8 RGB (H, W, 3) array (a view of msg.data for rgb8)."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg)
    return array_to_rgb8(image_to_numpy(msg), msg.encoding)


def decode_compressed(msg: CompressedImage) -> np.ndarray:
    """Decode a CompressedImage (JPEG, PNG) to a contiguous uint8 RGB (H, W, 3) array."""
    buf = np.frombuffer(msg.data, np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is None:
        raise ImageConversionError(f'cannot decode compressed image (format {msg.format!r})')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_colour_encoding(encoding: str) -> None:
    """Raise ImageConversionError unless array_to_rgb8 can turn this encoding into RGB."""
    if encoding not in _COLOUR_CODES:
        raise ImageConversionError(f'encoding {encoding!r} is not a colour image')


def array_to_rgb8(img: np.ndarray, encoding: str) -> np.ndarray:
    """RGB (H, W, 3) uint8 from image_to_numpy's array of a colour encoding; rgb8 comes back as is (no copy)."""
    check_colour_encoding(encoding)
    code = _COLOUR_CODES[encoding]
    return img if code is None else cv2.cvtColor(img, code)


def numpy_to_image(arr: np.ndarray, encoding: str, msg: Image | None = None) -> Image:
    """Fill (or create) an Image message from an array; the header is left to the caller."""
    msg = Image() if msg is None else msg
    arr = np.ascontiguousarray(arr)
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(arr.dtype.byteorder == '>' or (arr.dtype.byteorder == '=' and sys.byteorder == 'big'))
    msg.step = int(arr.strides[0])
    msg.data = arr.tobytes()
    return msg
