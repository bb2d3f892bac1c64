"""Moves exported graphs into the bundle, storing their weights as ONNX external data when the bundle is large.

Protobuf caps one serialised ONNX file at 2 GB. Above that, the TorchScript exporter writes one file per
tensor beside the graph; a bundle instead keeps each graph's weights in a single `<graph>.onnx.data` file
(`adamoe_contract.bundle_format.external_data_file`) that bundle.json declares and the bundle_id covers.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from adamoe_contract import bundle_format as fmt

# Graphs that together take more bytes than this store their weights externally (the "over 2 GB").
EXTERNAL_DATA_THRESHOLD = 2 * 1024**3
# Tensors below this many bytes stay inside the graph file (ONNX's own default).
INLINE_TENSOR_BYTES = 1024


def scratch_file(scratch: Path, graph_file: str) -> Path:
    """Where a graph is first exported: a folder of its own, for the per-tensor files of a >2 GB export."""
    folder = Path(scratch) / Path(graph_file).stem
    folder.mkdir(parents=True, exist_ok=True)
    return folder / graph_file


def _exported_bytes(scratch: Path) -> int:
    return sum(f.stat().st_size for f in Path(scratch).rglob('*') if f.is_file())


def _exporter_wrote_external_data(scratch: Path, graph_file: str) -> bool:
    return any(f.name != graph_file for f in scratch_file(scratch, graph_file).parent.iterdir())


def place_graphs(scratch: Path, out_dir: Path, threshold: int = EXTERNAL_DATA_THRESHOLD) -> dict[str, str]:
    """Move the exported graphs from scratch into out_dir; return {graph file: external-data file}.

    Below `threshold` bytes in all, each graph file is moved as the exporter wrote it (byte for byte).
    Otherwise every graph is re-saved with its weights in one external-data file, and the map names them.
    """
    out_dir = Path(out_dir)
    external = _exported_bytes(scratch) > threshold or any(
        _exporter_wrote_external_data(scratch, name) for name in fmt.GRAPH_FILES
    )
    placed: dict[str, str] = {}
    for name in fmt.GRAPH_FILES:
        source, target = scratch_file(scratch, name), out_dir / name
        data_file = out_dir / fmt.external_data_file(name)
        data_file.unlink(missing_ok=True)  # a re-export into the same folder; onnx appends to an existing file
        if external:
            model = onnx.load(str(source))  # reads any per-tensor files the exporter wrote
            onnx.save_model(
                model,
                str(target),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data_file.name,
                size_threshold=INLINE_TENSOR_BYTES,
            )
            del model
            # The exporter checked the traced graph; check the re-saved one and its data's declared location.
            onnx.checker.check_model(str(target), full_check=True)
            placed[name] = data_file.name
        else:
            os.replace(source, target)
    return placed
