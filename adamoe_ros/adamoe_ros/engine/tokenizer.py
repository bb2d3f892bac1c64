"""The bundle's instruction tokenizer, read with the HF `tokenizers` package (no transformers at runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from adamoe_contract.spec import BundleError, TokenizerSpec


class InstructionTokenizer:
    """The training tokenizer (HF `tokenizers` file), with LeRobot's newline, truncation and right padding."""

    def __init__(self, folder: Path, spec: TokenizerSpec) -> None:
        file = Path(folder) / spec.file
        if not file.is_file():
            raise BundleError(f'{file}: tokenizer file missing')
        try:
            self._tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # tokenizers raises plain Exception subclasses for bad files
            raise BundleError(f'{file}: not a valid tokenizers file ({exc})') from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=spec.max_length)
        self.spec = spec

    def __call__(self, instruction: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (tokens int64 (1, L), mask bool (1, L)) for one instruction."""
        if self.spec.append_newline and not instruction.endswith('\n'):
            instruction = f'{instruction}\n'
        ids = self._tokenizer.encode(instruction, add_special_tokens=self.spec.add_special_tokens).ids
        length = self.spec.max_length
        tokens = np.full((1, length), self.spec.pad_token_id, dtype=np.int64)
        mask = np.zeros((1, length), dtype=bool)
        tokens[0, : len(ids)] = ids
        mask[0, : len(ids)] = True
        return tokens, mask
