"""PI0 / PI05 AdaMoE graphs (tiny size): ONNX Runtime against LeRobot's own `sample_actions`, fp32."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from lerobot.policies.factory import make_policy

from adamoe_contract import bundle_format as fmt
from lerobot_policy_adamoe.export.external_data import scratch_file
from lerobot_policy_adamoe.export.metadata import camera_names
from lerobot_policy_adamoe.export.pi_graphs import export_pi_graphs
from lerobot_policy_adamoe.moe import capture_routing
from lerobot_policy_adamoe.tiny_pi import make_tiny_pi_config


@pytest.fixture(scope='module', params=['pi0', 'pi05'])
def exported(request, tiny_backbone, synthetic_dataset, tmp_path_factory):
    kind = request.param
    torch.manual_seed(0)
    config = make_tiny_pi_config(kind, tiny_backbone, top_k=2, gating_init_std=0.5)  # spread-out routing
    policy = make_policy(config, ds_meta=synthetic_dataset.meta).eval()
    out = tmp_path_factory.mktemp(f'{kind}_graphs')
    io = export_pi_graphs(policy, out)
    return kind, policy, out, io


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def test_graph_inputs_follow_the_base(exported):
    kind, policy, _, io = exported
    cams = [fmt.image_input_name(c) for c in camera_names(policy.config)]
    assert list(io['prefix']['inputs']) == [*cams, fmt.LANG_TOKENS, fmt.LANG_MASK]
    state = [fmt.STATE] if kind == 'pi0' else []  # PI05's state is in the prompt tokens
    leading = [fmt.X_T, fmt.TIME, *state, fmt.PREFIX_PAD_MASK]
    assert list(io['denoise']['inputs'])[: len(leading)] == leading
    assert list(io['denoise']['outputs']) == [fmt.VELOCITY, fmt.ROUTING_INDICES, fmt.ROUTING_WEIGHTS]
    assert io['denoise']['outputs'][fmt.ROUTING_INDICES]['shape'] == [1, 2, policy.config.chunk_size, 2]


def test_ort_matches_lerobot_sample_actions(exported):
    kind, policy, out, _ = exported
    config = policy.config
    gen = torch.Generator().manual_seed(5)
    height, width = config.image_resolution
    images = [torch.rand(1, 3, height, width, generator=gen) * 2 - 1 for _ in camera_names(config)]
    tokens = torch.randint(0, 500, (1, config.tokenizer_max_length), generator=gen)
    mask = torch.zeros(1, config.tokenizer_max_length, dtype=torch.bool)
    mask[0, :11] = True
    state = torch.randn(1, config.max_state_dim, generator=gen)
    noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=gen)

    args = [images, [torch.ones(1, dtype=torch.bool)] * len(images), tokens, mask]
    if kind == 'pi0':
        args.append(state)
    with capture_routing() as routing:
        expected = policy.model.sample_actions(*args, noise=noise.clone()).numpy()

    prefix, denoise = session(scratch_file(out, fmt.PREFIX_FILE)), session(scratch_file(out, fmt.DENOISE_FILE))
    feeds = {fmt.image_input_name(c): img.numpy() for c, img in zip(camera_names(config), images, strict=True)}
    feeds |= {fmt.LANG_TOKENS: tokens.numpy(), fmt.LANG_MASK: mask.numpy()}
    cache = dict(zip([o.name for o in prefix.get_outputs()], prefix.run(None, feeds), strict=True))
    steps = config.num_inference_steps
    dt = -1.0 / steps
    x_t = noise.numpy()
    torch_steps = routing.passes(policy.moe_modules)
    assert len(torch_steps) == steps
    for step in range(steps):
        feed = {fmt.X_T: x_t, fmt.TIME: np.array([1.0 + step * dt], dtype=np.float32), **cache}
        if kind == 'pi0':
            feed[fmt.STATE] = state.numpy()
        velocity, indices, weights = denoise.run(None, feed)
        x_t = x_t + dt * velocity
        # the graph's routing is the action tokens' routing in LeRobot's own loop
        torch_idx = torch.stack([i.topk_idx.reshape(1, -1, 2)[:, -config.chunk_size :] for i in torch_steps[step]], 1)
        torch_w = torch.stack([i.topk_weight.reshape(1, -1, 2)[:, -config.chunk_size :] for i in torch_steps[step]], 1)
        np.testing.assert_array_equal(indices, torch_idx.numpy())
        np.testing.assert_allclose(weights, torch_w.numpy(), atol=1e-5)
    assert len(np.unique(indices)) == config.num_experts  # spread-out routing reaches every expert
    assert np.abs(x_t - expected).max() < 1e-4, np.abs(x_t - expected).max()
