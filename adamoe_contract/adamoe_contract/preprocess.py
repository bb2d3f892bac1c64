"""Observation preprocessing and action post-processing in numpy, numerically identical to LeRobot's policies.

SmolVLA and PI0/PI05 differ in how they pad images (left/top vs centred) and in where the state goes (PI05 writes
it into the prompt as discretised tokens, `state_prompt`); normalisation is LeRobot's NormalizerProcessorStep.
"""

from __future__ import annotations

import numpy as np

from adamoe_contract.spec import ImagePreprocessing, NormStats


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


def resize_with_pad_centered(image: np.ndarray, height: int, width: int, pad_value: float) -> np.ndarray:
    """PI0/PI05's (openpi) resize_with_pad of one float32 HxWxC image in [0, 1]: bilinear, clamp, pad centred.

    The odd pixel of padding goes to the bottom/right, as in LeRobot's `resize_with_pad_torch`.
    """
    cur_h, cur_w = image.shape[:2]
    if (cur_h, cur_w) == (height, width):
        return image
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out = np.full((height, width, image.shape[2]), pad_value, dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = np.clip(resize_bilinear(image, new_h, new_w), 0.0, 1.0)
    return out


_RESIZE = {'left_top': resize_with_pad, 'center': resize_with_pad_centered}


def image_to_model_input(
    image: np.ndarray, camera_hw: tuple[int, int], preprocessing: ImagePreprocessing
) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 (1, 3, h, w) in [-1, 1], via the camera size the policy was trained at."""
    resize = _RESIZE[preprocessing.padding]
    pixels = image.astype(np.float32) / 255.0
    pixels = resize(pixels, *camera_hw, pad_value=preprocessing.pad_value)
    pixels = resize(pixels, preprocessing.model_height, preprocessing.model_width, pad_value=preprocessing.pad_value)
    # SigLIP expects [-1, 1]; the padding is applied before scaling, as in SmolVLA and PI0/PI05.
    return np.ascontiguousarray((pixels * 2.0 - 1.0).transpose(2, 0, 1)[None])


def _quantile_range(stats: NormStats) -> tuple[np.ndarray, np.ndarray]:
    """(low quantile, denominator) of a QUANTILES / QUANTILE10 mode, eps where the quantiles coincide."""
    low, high = (stats.q01, stats.q99) if stats.mode == 'QUANTILES' else (stats.q10, stats.q90)
    return low, np.where(high - low == 0, stats.eps, high - low)


def normalize(values: np.ndarray, stats: NormStats) -> np.ndarray:
    """LeRobot NormalizerProcessorStep forward transform (the same operations in the same order)."""
    if stats.mode == 'MEAN_STD':
        return (values - stats.mean) / (stats.std + stats.eps)
    if stats.mode == 'MIN_MAX':
        denom = np.where(stats.max - stats.min == 0, stats.eps, stats.max - stats.min)
        return 2.0 * (values - stats.min) / denom - 1.0
    if stats.mode in ('QUANTILES', 'QUANTILE10'):
        low, denom = _quantile_range(stats)
        return 2.0 * (values - low) / denom - 1.0
    return values


def unnormalize(values: np.ndarray, stats: NormStats) -> np.ndarray:
    """LeRobot UnnormalizerProcessorStep (inverse) transform."""
    if stats.mode == 'MEAN_STD':
        return values * stats.std + stats.mean
    if stats.mode == 'MIN_MAX':
        denom = np.where(stats.max - stats.min == 0, stats.eps, stats.max - stats.min)
        return (values + 1.0) / 2.0 * denom + stats.min
    if stats.mode in ('QUANTILES', 'QUANTILE10'):
        low, denom = _quantile_range(stats)
        return (values + 1.0) * denom / 2.0 + low
    return values


def discretize_state(normalized_state: np.ndarray, bins: int) -> np.ndarray:
    """PI05's (openpi) state tokens: [-1, 1] cut into `bins` equal bins; below -1 gives -1, the top is open-ended."""
    return np.digitize(normalized_state, bins=np.linspace(-1, 1, bins + 1)[:-1]) - 1


def state_prompt(instruction: str, normalized_state: np.ndarray, bins: int) -> str:
    """PI05's prompt: the cleaned instruction and the discretised normalised state.

    LeRobot's Pi05PrepareStateTokenizerProcessorStep builds it from the (unpadded) normalised state; the tokenizer
    then encodes it as it is (no newline appended).
    """
    text = instruction.strip().replace('_', ' ').replace('\n', ' ')
    state = ' '.join(str(int(v)) for v in discretize_state(normalized_state, bins))
    return f'Task: {text}, State: {state};\nAction: '


def pad_last_dim(values: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the last axis to `size` (LeRobot pad_vector)."""
    padded = np.zeros((*values.shape[:-1], size), dtype=np.float32)
    padded[..., : values.shape[-1]] = values
    return padded
