"""On-disk layout of a policy bundle (format_version 2), shared by the exporter and the runtime."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

# Version 2 added `model_family` (and what PI bundles need: centred image padding, state tokens in the prompt,
# quantile normalisation). Version 1 bundles predate it: all of them are SmolVLA bundles, and still load.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, FORMAT_VERSION)
METADATA_FILE = 'bundle.json'
PREFIX_FILE = 'prefix.onnx'
DENOISE_FILE = 'denoise.onnx'
TOKENIZER_FILE = 'tokenizer.json'
# Files covered by bundle_id; a README or other notes may sit beside them without changing the id.
CONTENT_FILES = (PREFIX_FILE, DENOISE_FILE, TOKENIZER_FILE)
GRAPH_FILES = (PREFIX_FILE, DENOISE_FILE)
# bundle.json key mapping a graph file to the ONNX external-data file that holds its weights. Graphs over
# protobuf's 2 GB limit must store their weights outside the .onnx file; smaller bundles leave the key out.
EXTERNAL_DATA = 'external_data'

# Model families: the LeRobot base the graphs were traced from (bundle.json `model_family`).
SMOLVLA = 'smolvla'
PI0 = 'pi0'
PI05 = 'pi05'
MODEL_FAMILIES = (SMOLVLA, PI0, PI05)
# The graph that takes the normalised, zero-padded `state` input: SmolVLA embeds it in the prefix, PI0 makes it a
# suffix token of every denoise step, and PI05 has none (its state is discretised into the prompt's tokens).
STATE_INPUT_GRAPH = {SMOLVLA: 'prefix', PI0: 'denoise', PI05: None}

# Graph tensor names.
LANG_TOKENS = 'lang_tokens'
LANG_MASK = 'lang_mask'
STATE = 'state'
PREFIX_PAD_MASK = 'prefix_pad_mask'
X_T = 'x_t'
TIME = 't'
VELOCITY = 'velocity'
ROUTING_INDICES = 'routing_indices'
ROUTING_WEIGHTS = 'routing_weights'


def image_input_name(camera: str) -> str:
    """Name of the prefix-graph input that carries one camera's preprocessed image."""
    return f'image_{camera}'


def cache_names(num_layers: int) -> list[str]:
    """Names of the key/value cache tensors, interleaved per layer (key_0, value_0, key_1, ...)."""
    return [f'{kind}_{layer}' for layer in range(num_layers) for kind in ('key', 'value')]


def external_data_file(graph_file: str) -> str:
    """Name the one file that may hold a graph's external data (beside it, where ONNX Runtime looks)."""
    return f'{graph_file}.data'


def content_files(external_data: Iterable[str] = ()) -> tuple[str, ...]:
    """Files the bundle_id covers: the graphs, the tokenizer, then any external-data files, sorted."""
    return CONTENT_FILES + tuple(sorted(external_data))


def content_hash(folder: Path, files: Sequence[str] = CONTENT_FILES) -> str:
    """sha256 over the names and contents of the bundle's content files (the bundle_id)."""
    digest = hashlib.sha256()
    for name in files:
        file_digest = hashlib.sha256()
        with open(Path(folder) / name, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                file_digest.update(block)
        digest.update(f'{name}\0{file_digest.hexdigest()}\n'.encode())
    return digest.hexdigest()
