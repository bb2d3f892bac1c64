"""Observation preprocessing and action post-processing in numpy, numerically identical to LeRobot/SmolVLA."""

from __future__ import annotations

import numpy as np

from adamoe_contract.spec import NormStats


def _bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows/columns and weights of torch's bilinear interpolate (align_corners=False, no antialias)."""
    source = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    low = np.minimum(source.astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, (source - low).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of one float32 HxWxC image, half-pixel centres, like torch's F.interpolate."""
    rows_lo, rows_hi, row_w = _bilinear_taps(image.shape[0], height)
    cols_lo, cols_hi, col_w = _bilinear_taps(image.shape[1], width)
    row_w, col_w = row_w[:, None, None], col_w[None, :, None]
    rows = image[rows_lo] * (1.0 - row_w) + image[rows_hi] * row_w
    return rows[:, cols_lo] * (1.0 - col_w) + rows[:, cols_hi] * col_w


def resize_with_pad(image: np.ndarray, height: int, width: int, pad_value: float) -> np.ndarray:
    """SmolVLA's resize_with_pad for one float32 HxWxC image: keep aspect, bilinear, pad LEFT and TOP."""
    cur_h, cur_w = image.shape[:2]
    if (cur_h, cur_w) == (height, width):
        return image
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    out = np.full((height, width, image.shape[2]), pad_value, dtype=np.float32)
    out[height - new_h :, width - new_w :] = resize_bilinear(image, new_h, new_w)
    return out


def image_to_model_input(
    image: np.ndarray, camera_hw: tuple[int, int], model_hw: tuple[int, int], pad_value: float
) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 (1, 3, h, w) in [-1, 1], via the camera size the policy was trained at."""
    pixels = image.astype(np.float32) / 255.0
    pixels = resize_with_pad(pixels, *camera_hw, pad_value=pad_value)
    pixels = resize_with_pad(pixels, *model_hw, pad_value=pad_value)
    # SigLIP expects [-1, 1]; the padding is applied before scaling, as in SmolVLA.prepare_images.
    return np.ascontiguousarray((pixels * 2.0 - 1.0).transpose(2, 0, 1)[None])


def normalize(values: np.ndarray, stats: NormStats) -> np.ndarray:
    """LeRobot NormalizerProcessorStep forward transform."""
    if stats.mode == 'MEAN_STD':
        return (values - stats.mean) / (stats.std + stats.eps)
    if stats.mode == 'MIN_MAX':
        denom = np.where(stats.max - stats.min == 0, stats.eps, stats.max - stats.min)
        return 2.0 * (values - stats.min) / denom - 1.0
    return values


def unnormalize(values: np.ndarray, stats: NormStats) -> np.ndarray:
    """LeRobot UnnormalizerProcessorStep (inverse) transform."""
    if stats.mode == 'MEAN_STD':
        return values * stats.std + stats.mean
    if stats.mode == 'MIN_MAX':
        denom = np.where(stats.max - stats.min == 0, stats.eps, stats.max - stats.min)
        return (values + 1.0) / 2.0 * denom + stats.min
    return values


def pad_last_dim(values: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the last axis to `size` (LeRobot pad_vector)."""
    padded = np.zeros((*values.shape[:-1], size), dtype=np.float32)
    padded[..., : values.shape[-1]] = values
    return padded
