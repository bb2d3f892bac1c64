"""Observation preprocessing and action post-processing, numerically identical to LeRobot/SmolVLA training."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tokenizers import Tokenizer

from adamoe_ros.engine.errors import BundleError
from adamoe_ros.engine.spec import NormStats, TokenizerSpec


def resize_with_pad(image: np.ndarray, height: int, width: int, pad_value: float) -> np.ndarray:
    """SmolVLA's resize_with_pad for one float32 HxWxC image: keep aspect, bilinear, pad LEFT and TOP."""
    cur_h, cur_w = image.shape[:2]
    if (cur_h, cur_w) == (height, width):
        return image
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    # cv2 INTER_LINEAR on float32 uses half-pixel centres without antialiasing, like
    # torch.nn.functional.interpolate(mode="bilinear", align_corners=False).
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    out = np.full((height, width, image.shape[2]), pad_value, dtype=np.float32)
    out[height - new_h :, width - new_w :] = resized
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


class InstructionTokenizer:
    """The training tokenizer (HF `tokenizers` file), with LeRobot's newline, truncation and right padding."""

    def __init__(self, folder: Path, spec: TokenizerSpec) -> None:
        file = Path(folder) / spec.file
        if not file.is_file():
            raise BundleError(f"{file}: tokenizer file missing")
        try:
            self._tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # tokenizers raises plain Exception subclasses for bad files
            raise BundleError(f"{file}: not a valid tokenizers file ({exc})") from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=spec.max_length)
        self.spec = spec

    def __call__(self, instruction: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (tokens int64 (1, L), mask bool (1, L)) for one instruction."""
        if self.spec.append_newline and not instruction.endswith("\n"):
            instruction = f"{instruction}\n"
        ids = self._tokenizer.encode(instruction, add_special_tokens=self.spec.add_special_tokens).ids
        length = self.spec.max_length
        tokens = np.full((1, length), self.spec.pad_token_id, dtype=np.int64)
        mask = np.zeros((1, length), dtype=bool)
        tokens[0, : len(ids)] = ids
        mask[0, : len(ids)] = True
        return tokens, mask


def normalize(values: np.ndarray, stats: NormStats) -> np.ndarray:
    """LeRobot NormalizerProcessorStep forward transform."""
    if stats.mode == "MEAN_STD":
        return (values - stats.mean) / (stats.std + stats.eps)
    if stats.mode == "MIN_MAX":
        denom = np.where(stats.max - stats.min == 0, stats.eps, stats.max - stats.min)
        return 2.0 * (values - stats.min) / denom - 1.0
    return values


def unnormalize(values: np.ndarray, stats: NormStats) -> np.ndarray:
    """LeRobot UnnormalizerProcessorStep (inverse) transform."""
    if stats.mode == "MEAN_STD":
        return values * stats.std + stats.mean
    if stats.mode == "MIN_MAX":
        denom = np.where(stats.max - stats.min == 0, stats.eps, stats.max - stats.min)
        return (values + 1.0) / 2.0 * denom + stats.min
    return values


def pad_last_dim(values: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the last axis to `size` (LeRobot pad_vector)."""
    padded = np.zeros((*values.shape[:-1], size), dtype=np.float32)
    padded[..., : values.shape[-1]] = values
    return padded
