"""``load_unet_checkpoint`` checks the whole checkpoint before it loads any of it (issue 18, item 5)."""

from __future__ import annotations

import types

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from pladis_registry.kit.loading import load_unet_checkpoint


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=8, norm_num_groups=8,
    ).eval()


def _snapshot(unet):
    return {k: v.clone() for k, v in unet.state_dict().items()}


def _unchanged(unet, before) -> bool:
    return all(torch.equal(v, before[k]) for k, v in unet.state_dict().items())


@pytest.fixture
def pipe_and_checkpoint():
    pipe = types.SimpleNamespace(unet=tiny_unet())
    donor = tiny_unet()
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(1.0)
    return pipe, {k: v.contiguous() for k, v in donor.state_dict().items()}


def test_a_checkpoint_with_a_missing_key_leaves_the_unet_untouched(pipe_and_checkpoint, tmp_path):
    pipe, state = pipe_and_checkpoint
    state.pop(next(iter(state)))
    save_file(state, tmp_path / "unet.safetensors")
    before = _snapshot(pipe.unet)
    with pytest.raises(ValueError, match="1 missing keys"):
        load_unet_checkpoint(pipe, tmp_path / "unet.safetensors")
    assert _unchanged(pipe.unet, before)


def test_a_checkpoint_with_a_wrong_shape_leaves_the_unet_untouched(pipe_and_checkpoint, tmp_path):
    pipe, state = pipe_and_checkpoint
    name = list(state)[-1]
    state[name] = torch.zeros(*state[name].shape, 2)
    save_file(state, tmp_path / "unet.safetensors")
    before = _snapshot(pipe.unet)
    with pytest.raises(ValueError, match=rf"1 tensors of the wrong shape.*{name}"):
        load_unet_checkpoint(pipe, tmp_path / "unet.safetensors")
    assert _unchanged(pipe.unet, before)


def test_a_fitting_checkpoint_is_loaded_whole(pipe_and_checkpoint, tmp_path):
    pipe, state = pipe_and_checkpoint
    save_file(state, tmp_path / "unet.safetensors")
    load_unet_checkpoint(pipe, tmp_path / "unet.safetensors")
    assert all(torch.equal(v, state[k]) for k, v in pipe.unet.state_dict().items())
