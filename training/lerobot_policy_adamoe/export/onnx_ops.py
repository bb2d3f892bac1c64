"""ONNX symbolic fix-ups needed to export LeRobot's VLA code with the TorchScript exporter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.onnx.symbolic_opset11 as opset11
from torch.onnx import symbolic_helper

_ONNX_INT64 = 7


@symbolic_helper.parse_args('v', 'i', 'none')
def _cumsum_bool_as_int64(g, self, dim, dtype=None):  # noqa: ANN001, ANN202 (torch symbolic signature)
    # torch sums bool masks as int64 (position ids); ONNX CumSum rejects bool, so cast like torch does.
    if self.type().scalarType() == 'Bool':
        self = g.op('Cast', self, to_i=_ONNX_INT64)
    return opset11.cumsum(g, self, dim, dtype)


@contextlib.contextmanager
def export_symbolics(opset: int) -> Iterator[None]:
    """Register the fixed symbolics for the duration of one export."""
    torch.onnx.register_custom_op_symbolic('aten::cumsum', _cumsum_bool_as_int64, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic('aten::cumsum', opset)
