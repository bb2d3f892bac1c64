"""Errors raised by the policy engine."""


class BundleError(Exception):
    """A policy bundle is missing, malformed or inconsistent; the message names the file and the problem."""


class ProviderError(RuntimeError):
    """A requested ONNX Runtime execution provider is unavailable or was silently replaced."""
