"""Image message <-> numpy conversion without cv_bridge."""

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image

from adamoe_ros.ros_image import ImageConversionError, image_to_numpy, numpy_to_image, to_rgb8

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    'encoding,shape,dtype',
    [
        ('rgb8', (6, 7, 3), np.uint8),
        ('mono8', (6, 7), np.uint8),
        ('16UC1', (6, 7), np.uint16),
        ('32FC1', (6, 7), np.float32),
        ('bgra8', (6, 7, 4), np.uint8),
    ],
)
def test_round_trip_through_serialization(encoding, shape, dtype):
    arr = (RNG.random(shape) * 200).astype(dtype)
    msg = deserialize_message(serialize_message(numpy_to_image(arr, encoding)), Image)
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


def test_padded_rows_and_big_endian():
    arr = RNG.integers(0, 60000, (3, 4), dtype=np.uint16)
    msg = Image(height=3, width=4, encoding='16UC1', is_bigendian=1, step=12)
    padded = np.zeros((3, 12), np.uint8)
    padded[:, :8] = arr.astype('>u2').view(np.uint8).reshape(3, 8)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


def test_colour_conversions_to_rgb():
    rgb = RNG.integers(0, 255, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(rgb, 'rgb8')), rgb)
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(rgb[..., ::-1], 'bgr8')), rgb)
    ok, png = cv2.imencode('.png', rgb[..., ::-1])
    assert ok
    np.testing.assert_array_equal(to_rgb8(CompressedImage(format='png', data=png.tobytes())), rgb)


@pytest.mark.parametrize(
    'msg',
    [
        Image(height=2, width=2, encoding='yuv422', step=4, data=bytes(8)),
        Image(height=2, width=2, encoding='rgb8', step=6, data=bytes(11)),
        Image(height=2, width=2, encoding='rgb8', step=4, data=bytes(8)),
        Image(height=0, width=2, encoding='rgb8', step=6, data=b''),
        CompressedImage(format='jpeg', data=b'not a jpeg'),
        Image(height=2, width=2, encoding='16UC1', step=4, data=bytes(8)),
    ],
)
def test_malformed_images_raise_clear_errors(msg):
    with pytest.raises(ImageConversionError):
        to_rgb8(msg)
