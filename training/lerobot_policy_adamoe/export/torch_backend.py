"""PyTorch backend implementing adamoe_contract's PolicyBackend, for development: runs a training checkpoint.

Never imported by the runtime. Same noise generation as the ONNX engine, so a seed gives the same chunk in both.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from lerobot.configs import RTCAttentionSchedule
from lerobot.policies.rtc.configuration_rtc import RTCConfig

from adamoe_contract import bundle_format as fmt
from adamoe_contract.backend import (
    InferenceResult,
    Observation,
    RtcOptions,
    check_observation,
    initial_noise,
    normalized_prefix,
)
from adamoe_contract.routing import RoutingAccumulator
from adamoe_contract.spec import BundleSpec, spec_from_dict
from lerobot_policy_adamoe.export.bundle_writer import normalization_entries, pi_prompt_entry
from lerobot_policy_adamoe.export.checkpoint import LoadedCheckpoint, load_checkpoint
from lerobot_policy_adamoe.export.family import model_family
from lerobot_policy_adamoe.export.graphs import find_moe_layers
from lerobot_policy_adamoe.export.metadata import DatasetNames, build_metadata
from lerobot_policy_adamoe.export.reference import observation_to_batch
from lerobot_policy_adamoe.moe import capture_routing

_NO_GRAPHS = {'prefix': {'inputs': {}, 'outputs': {}}, 'denoise': {'inputs': {}, 'outputs': {}}}


class TorchPolicyEngine:
    """`infer()` like PolicyEngine, computed by the PyTorch policy with LeRobot's processors and RTC."""

    def __init__(self, checkpoint: LoadedCheckpoint, spec: BundleSpec, rtc: RtcOptions | None = None) -> None:
        self.checkpoint = checkpoint
        self.spec = spec
        self.rtc = rtc or RtcOptions()
        self._moe = [module for _, module in find_moe_layers(checkpoint.policy.model)]

    @classmethod
    def from_checkpoint(cls, path: str | Path, names: DatasetNames, rtc: RtcOptions | None = None) -> TorchPolicyEngine:
        """Load a LeRobot pretrained_model folder; `names` gives what the checkpoint does not store."""
        checkpoint = load_checkpoint(Path(path))
        config = checkpoint.policy.config
        tokenizer = {
            'file': 'tokenizer.json',
            'max_length': config.tokenizer_max_length,
            'pad_token_id': 0,
            'padding_side': 'right',
            'append_newline': True,
            'add_special_tokens': True,
        }
        if model_family(checkpoint.policy.model) != fmt.SMOLVLA:
            tokenizer |= pi_prompt_entry(checkpoint.preprocessor)
        metadata = build_metadata(
            checkpoint.policy,
            names,
            normalization_entries(config, checkpoint.stats, checkpoint.eps),
            tokenizer,
            _NO_GRAPHS,
            {'checkpoint': str(path)},
            'fp32',
        )
        metadata['bundle_id'] = f'torch:{Path(path).resolve()}'
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
        """Predict one action chunk (horizon, action_dim) in robot units; RTC-guided if prefix_actions given."""
        spec, ckpt, policy = self.spec, self.checkpoint, self.checkpoint.policy
        start = time.perf_counter()
        check_observation(observation, spec)
        noise = initial_noise(spec, noise_seed, noise)
        batch = ckpt.preprocessor(observation_to_batch(observation))
        kwargs = self._rtc_kwargs(prefix_actions, inference_delay)
        t_pre = time.perf_counter()
        try:
            policy.reset()
            with capture_routing() as captured:
                actions = policy.predict_action_chunk(batch, noise=torch.from_numpy(noise), **kwargs)
        finally:
            if kwargs:
                policy.config.rtc_config = None
                policy.init_rtc_processor()
                policy.model.rtc_processor = None
        t_model = time.perf_counter()
        chunk = ckpt.postprocessor(actions)[0].cpu().numpy().astype(np.float32)
        routing = RoutingAccumulator(spec.routing)
        for step in captured.passes(self._moe):  # one pass per denoise step
            # Routing covers every suffix token; the action tokens are the last horizon ones (PI0's state first).
            indices = np.stack([info.topk_idx[-spec.horizon :].numpy() for info in step])[None]
            weights = np.stack([info.topk_weight[-spec.horizon :].float().numpy() for info in step])[None]
            routing.add(indices, weights)
        end = time.perf_counter()
        timings = {'preprocess': t_pre - start, 'prefix': 0.0, 'denoise': t_model - t_pre, 'total': end - start}
        return InferenceResult(actions=chunk, timings=timings, routing=routing.result(), noise=noise)

    def _rtc_kwargs(self, prefix_actions: np.ndarray | None, inference_delay: int) -> dict:
        if prefix_actions is None:
            return {}
        prev = normalized_prefix(prefix_actions, inference_delay, self.spec)  # validates before touching the policy
        policy = self.checkpoint.policy
        policy.config.rtc_config = RTCConfig(
            enabled=True,
            execution_horizon=self.rtc.execution_horizon,
            max_guidance_weight=self.rtc.max_guidance_weight,
            prefix_attention_schedule=RTCAttentionSchedule[self.rtc.schedule],
        )
        policy.init_rtc_processor()
        return {
            'inference_delay': inference_delay,
            'prev_chunk_left_over': torch.from_numpy(prev)[None],
            'execution_horizon': self.rtc.execution_horizon,
        }
