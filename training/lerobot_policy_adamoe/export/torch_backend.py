"""PyTorch backend behind the PolicyEngine interface, for development: runs a training checkpoint directly.

Never imported by the runtime. Same noise generation as the ONNX engine, so a seed gives the same chunk in both.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from lerobot.configs import RTCAttentionSchedule
from lerobot.policies.rtc.configuration_rtc import RTCConfig

from adamoe_ros.engine import InferenceResult, Observation, RtcOptions
from adamoe_ros.engine.preprocess import normalize
from adamoe_ros.engine.routing import RoutingAccumulator
from adamoe_ros.engine.spec import BundleSpec, spec_from_dict
from lerobot_policy_adamoe.export.bundle_writer import normalization_entries
from lerobot_policy_adamoe.export.checkpoint import LoadedCheckpoint, load_checkpoint
from lerobot_policy_adamoe.export.graphs import find_moe_layers
from lerobot_policy_adamoe.export.metadata import DatasetNames, build_metadata
from lerobot_policy_adamoe.export.reference import observation_to_batch

_NO_GRAPHS = {"prefix": {"inputs": {}, "outputs": {}}, "denoise": {"inputs": {}, "outputs": {}}}


class TorchPolicyEngine:
    """`infer()` like PolicyEngine, computed by the PyTorch policy with LeRobot's processors and RTC."""

    def __init__(self, checkpoint: LoadedCheckpoint, spec: BundleSpec, rtc: RtcOptions | None = None) -> None:
        self.checkpoint = checkpoint
        self.spec = spec
        self.rtc = rtc or RtcOptions()
        self._moe = [module for _, module in find_moe_layers(checkpoint.policy.model)]
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []

    @classmethod
    def from_checkpoint(cls, path: str | Path, names: DatasetNames, rtc: RtcOptions | None = None) -> TorchPolicyEngine:
        """Load a LeRobot pretrained_model folder; `names` gives what the checkpoint does not store."""
        checkpoint = load_checkpoint(Path(path))
        config = checkpoint.policy.config
        tokenizer = {"file": "tokenizer.json", "max_length": config.tokenizer_max_length, "pad_token_id": 0,
                     "padding_side": "right", "append_newline": True, "add_special_tokens": True}
        metadata = build_metadata(
            checkpoint.policy, names, normalization_entries(config, checkpoint.stats, checkpoint.eps), tokenizer,
            _NO_GRAPHS, {"checkpoint": str(path)}, "fp32",
        )
        metadata["bundle_id"] = f"torch:{Path(path).resolve()}"
        return cls(checkpoint, spec_from_dict(metadata, Path(path)), rtc)

    @torch.no_grad()
    def infer(
        self,
        observation: Observation,
        prefix_actions: np.ndarray | None = None,
        inference_delay: int = 0,
        noise_seed: int | None = None,
        noise: np.ndarray | None = None,
    ) -> InferenceResult:
        """Predict one action chunk in robot units (RTC-guided when prefix_actions is given)."""
        spec, ckpt, policy = self.spec, self.checkpoint, self.checkpoint.policy
        start = time.perf_counter()
        shape = (1, spec.horizon, spec.max_action_dim)
        if noise is None:
            noise = np.random.default_rng(noise_seed).standard_normal(shape, dtype=np.float32)
        batch = ckpt.preprocessor(observation_to_batch(observation))
        kwargs = self._rtc_kwargs(prefix_actions, inference_delay)
        routing = RoutingAccumulator(spec.routing)
        self._pending = []
        hooks = [m.register_forward_hook(lambda mod, _i, _o: self._record(mod, routing)) for m in self._moe]
        t_pre = time.perf_counter()
        try:
            policy.reset()
            actions = policy.predict_action_chunk(batch, noise=torch.from_numpy(np.asarray(noise)), **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
            if kwargs:
                policy.config.rtc_config = None
                policy.init_rtc_processor()
                policy.model.rtc_processor = None
        t_model = time.perf_counter()
        chunk = ckpt.postprocessor(actions)[0].cpu().numpy().astype(np.float32)
        end = time.perf_counter()
        timings = {"preprocess": t_pre - start, "prefix": 0.0, "denoise": t_model - t_pre, "total": end - start}
        return InferenceResult(actions=chunk, timings=timings, routing=routing.result(), noise=noise)

    def _record(self, module: torch.nn.Module, routing: RoutingAccumulator) -> None:
        # Hooks fire layer by layer; the accumulator wants all layers of one step at once.
        info = module.last_routing
        horizon = self.spec.horizon
        self._pending.append((info.topk_idx[-horizon:].detach().numpy(),
                              info.topk_weight[-horizon:].detach().float().numpy()))
        if len(self._pending) == len(self._moe):
            indices = np.stack([i for i, _ in self._pending])[None]
            weights = np.stack([w for _, w in self._pending])[None]
            routing.add(indices, weights)
            self._pending = []

    def _rtc_kwargs(self, prefix_actions: np.ndarray | None, inference_delay: int) -> dict:
        if prefix_actions is None:
            return {}
        policy = self.checkpoint.policy
        policy.config.rtc_config = RTCConfig(
            enabled=True, execution_horizon=self.rtc.execution_horizon,
            max_guidance_weight=self.rtc.max_guidance_weight,
            prefix_attention_schedule=RTCAttentionSchedule[self.rtc.schedule],
        )
        policy.init_rtc_processor()
        prev = normalize(np.asarray(prefix_actions, dtype=np.float32), self.spec.action_norm)
        return {"inference_delay": inference_delay, "prev_chunk_left_over": torch.from_numpy(prev)[None],
                "execution_horizon": self.rtc.execution_horizon}
