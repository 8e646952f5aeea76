"""Vessel models: shapes on any size, block behaviour, parameter counts against hand counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eyescan.api import segmentation
from eyescan.testing import invoke_cli, json_lines
from eyescan_vessels import models
from eyescan_vessels.models import SCCBlock, SCConv, SpatialAttention, UNet, unet

#: The ablation ladder: registered name → factory.
LADDER = {
    "unet": models.unet,
    "unet-scc": models.unet_scc,
    "unet-sam": models.unet_sam,
    "unet-isam": models.unet_isam,
    "sccunet": models.sccunet,
}


def _conv_block(cin: int, cout: int) -> int:
    return cin * cout * 9 + 2 * cout + cout * cout * 9 + 2 * cout  # convs (no bias) + 2 BN


def test_parameter_count_matches_hand_count():
    model = UNet(width=8, depth=2)
    expected = (
        _conv_block(3, 8)
        + _conv_block(8, 16)  # encoders
        + _conv_block(16, 32)  # bottleneck
        + _conv_block(32 + 16, 16)
        + _conv_block(16 + 8, 8)  # decoders
        + 8
        + 1  # 1×1 head
    )
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (100, 31)])
def test_any_image_size(size):
    model = unet().eval()
    x = torch.randn(1, 3, *size)
    logits = segmentation.predict_logits(model, x, model.stride)
    assert logits.shape == (1, 1, *size)


def test_tiled_inference_matches_whole_image():
    torch.manual_seed(0)
    model = UNet(width=4, depth=2).eval()
    x = torch.randn(1, 3, 96, 80)
    whole = segmentation.predict_logits(model, x, model.stride)
    tiled = segmentation.predict_logits(model, x, model.stride, tile=64, overlap=16)
    assert tiled.shape == whole.shape
    # tiles see less context at their borders; centres agree closely
    assert torch.allclose(whole[..., 20:-20, 20:-20], tiled[..., 20:-20, 20:-20], atol=0.15)


# --- the SCCU-Net ablation ladder ---------------------------------------------------------


def _scconv(c: int) -> int:
    a, b = c // 2, c - c // 2  # plain half, calibrated half
    return (a * a * 9 + 2 * a) + 3 * (b * b * 9 + 2 * b)  # k1; k2, k3, k4 (conv + BN each)


def _scc_block(cin: int, cout: int) -> int:
    return cin * cout * 9 + 2 * cout + _scconv(cout)  # first conv + BN, then SCConv


def _ladder_count(block, attention: bool) -> int:
    """Hand count of the width-8, depth-4 U-Net with the given block (channels 8…128)."""
    encoders = block(3, 8) + block(8, 16) + block(16, 32) + block(32, 64)
    bottleneck = block(64, 128)
    decoders = block(128 + 64, 64) + block(64 + 32, 32) + block(32 + 16, 16) + block(16 + 8, 8)
    head = 8 + 1  # 1×1 conv, 8 weights + bias
    return encoders + bottleneck + decoders + head + (2 * 7 * 7 if attention else 0)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_scconv_parameter_count_matches_hand_count():
    # 16 channels → halves of 8: four 3×3 convs 8→8 (4 · 8·8·9 = 2304) + four BNs (4 · 2·8 = 64)
    assert _count(SCConv(16)) == 2304 + 64 == 2368
    # 16 channels as one plain 3×3 conv + BN: 16·16·9 + 32 = 2336, i.e. SCConv adds 2·16 BN params
    assert _count(SCConv(16)) - (16 * 16 * 9 + 2 * 16) == 2 * 16
    # odd: 5 → halves 2 (plain) and 3 (calibrated): k1 2·2·9 + 4 = 40; k2–k4 3 · (3·3·9 + 6) = 261
    assert _count(SCConv(5)) == 40 + 261 == _scconv(5)


def test_scc_block_parameter_count_matches_hand_count():
    # first conv 3→16: 3·16·9 = 432, its BN 32, then SCConv(16) 2368 → 2832
    assert _count(SCCBlock(3, 16)) == 432 + 32 + 2368 == _scc_block(3, 16)
    assert _count(SCCBlock(24, 8, dropout=0.1)) == _scc_block(24, 8)  # dropout has no weights


def test_spatial_attention_parameter_count_matches_hand_count():
    # one 7×7 conv, 2 input channels (channel max and mean) → 1, no bias: 2·7·7 = 98
    assert _count(SpatialAttention()) == 98


def test_ladder_parameter_counts_match_hand_counts():
    plain = _ladder_count(_conv_block, attention=False)
    scc = _ladder_count(_scc_block, attention=False)
    # SCConv adds 2·C BN parameters per block, C = 8+16+32+64 + 128 + 64+32+16+8 = 368
    assert scc - plain == 2 * 368
    expected = {
        "unet": plain,  # 491,873: the shipped weights' architecture
        "unet-scc": scc,  # 491,873 + 736 = 492,609
        "unet-sam": plain + 98,  # 491,873 + 98 = 491,971
        "unet-isam": plain + 98,  # same weights as unet-sam; only the map's input differs
        "sccunet": scc + 98,  # 492,609 + 98 = 492,707
    }
    assert expected == {
        "unet": 491_873,
        "unet-scc": 492_609,
        "unet-sam": 491_971,
        "unet-isam": 491_971,
        "sccunet": 492_707,
    }
    assert {name: _count(factory()) for name, factory in LADDER.items()} == expected


def test_plain_unet_state_dict_unchanged():
    """Shipped weights depend on ``unet``'s keys and shapes: no attention, no SCConv keys."""
    keys = unet().state_dict().keys()
    assert not [k for k in keys if "attention" in k or ".k1." in k]
    weights = Path(models.__file__).parent / "weights" / "unet.safetensors"
    if not weights.exists():
        pytest.skip("no shipped weights")
    from safetensors.torch import load_file

    unet().load_state_dict(load_file(weights), strict=True)


@pytest.mark.parametrize("name", sorted(LADDER))
def test_ladder_shapes(name):
    torch.manual_seed(0)
    model = LADDER[name]().eval()
    assert model.stride == 16
    with torch.no_grad():
        # 64×80: multiples of the stride, fed directly (bottleneck 4×5, SCConv pools it to 1×2)
        assert model(torch.randn(2, 3, 64, 80)).shape == (2, 1, 64, 80)
        # 16×16: a 1×1 bottleneck still works (pooling by 4 with ceil_mode)
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 1, 16, 16)
    # odd sizes go through the task's padding to a multiple of the stride (e.g. 37×53 → 48×64)
    logits = segmentation.predict_logits(model, torch.randn(1, 3, 37, 53), model.stride)
    assert logits.shape == (1, 1, 37, 53)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", sorted(LADDER))
def test_ladder_trains_one_step(name):
    torch.manual_seed(0)
    model = LADDER[name](width=4, depth=2)
    x, y = torch.randn(2, 3, 32, 32), torch.rand(2, 1, 32, 32).round()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_scconv_shapes_on_sizes_not_divisible_by_the_pooling():
    block = SCConv(6).eval()
    with torch.no_grad():
        assert block(torch.randn(1, 6, 5, 7)).shape == (1, 6, 5, 7)
        assert block(torch.randn(1, 6, 1, 1)).shape == (1, 6, 1, 1)


def test_scconv_calibration_path_is_live():
    """Changing only the down-sampled path's conv (k2) changes the calibrated half only."""
    torch.manual_seed(0)
    block = SCConv(8).eval()
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        before = block(x)
        block.k2[0].weight.mul_(-2.0).add_(0.1)
        after = block(x)
    assert torch.equal(before[:, :4], after[:, :4])  # plain half: untouched
    assert (before[:, 4:] - after[:, 4:]).abs().max() > 1e-3  # calibrated half: changed


def test_scconv_gate_follows_the_coarse_response():
    """The gate is sigmoid(identity + up-sampled coarse conv): a huge k2 response saturates it."""
    torch.manual_seed(0)
    block = SCConv(8).eval()
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        block.k2[1].bias.fill_(1e4)  # coarse response ≫ 0 → gate = 1
        open_gate = block(x)
        block.k2[1].bias.fill_(-1e4)  # ≪ 0 → gate = 0 → k4(0) = BN's shift
        closed_gate = block(x)
        expected_open = block.k4(block.k3(x[:, 4:]))
        expected_closed = block.k4(torch.zeros_like(x[:, 4:]))
    assert torch.allclose(open_gate[:, 4:], expected_open, atol=1e-5)
    assert torch.allclose(closed_gate[:, 4:], expected_closed, atol=1e-5)


def test_spatial_attention_gate_is_channel_max_and_mean_through_a_7x7_conv():
    torch.manual_seed(0)
    attention = SpatialAttention()
    x = torch.randn(2, 6, 12, 10)
    pooled = torch.stack([x.amax(dim=1), x.mean(dim=1)], dim=1)
    expected = torch.sigmoid(torch.nn.functional.conv2d(pooled, attention.conv.weight, padding=3))
    with torch.no_grad():
        assert torch.allclose(attention.attention_map(x), expected, atol=1e-6)
        assert torch.allclose(attention(x), x * expected, atol=1e-6)
        attention.conv.weight.zero_()  # a zero conv → gate 0.5 everywhere
        assert torch.allclose(attention(x), x * 0.5)


def _batch_norm_mode(model: torch.nn.Module) -> torch.nn.Module:
    """Train mode without dropout: batch statistics keep an untrained net's features O(1).

    In eval mode the untrained batch norms are identities, activations shrink
    layer by layer and the bottleneck's effect on the output is ~1e-8.
    """
    return model.train()


@pytest.mark.parametrize("name", ["unet-sam", "unet-isam", "sccunet"])
def test_attention_gate_changes_the_model_output(name):
    torch.manual_seed(0)
    model = _batch_norm_mode(LADDER[name](dropout=0.0))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.attention.conv.weight.zero_()
        zeroed = model(x)
        model.attention.conv.weight.normal_()
        altered = model(x)
    assert (before - zeroed).abs().max() > 1e-2
    assert (zeroed - altered).abs().max() > 1e-2


def test_isam_differs_from_sam_on_the_same_weights():
    """Same state dict; ISAM's map is computed from the bottleneck's input (pre-conv)."""
    torch.manual_seed(0)
    sam = _batch_norm_mode(models.unet_sam(dropout=0.0))
    isam = _batch_norm_mode(models.unet_isam(dropout=0.0))
    isam.load_state_dict(sam.state_dict(), strict=True)  # same keys and shapes
    calls = []
    original = isam.attention.attention_map
    isam.attention.attention_map = lambda t: calls.append(t.shape) or original(t)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (sam(x) - isam(x)).abs().max() > 1e-2
    # the map's input: 64 channels (bottleneck input), not the 128 of the convolved output
    assert calls == [torch.Size([2, 64, 4, 4])]


def test_unknown_block_or_attention_is_rejected():
    with pytest.raises(ValueError, match="block"):
        UNet(block="dense")
    with pytest.raises(ValueError, match="attention"):
        UNet(attention="channel")


def test_cli_lists_the_five_models_with_their_parameter_counts():
    result = invoke_cli("models", "vessels", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json_lines(result.stdout)}
    assert set(rows) == set(LADDER)
    for name, factory in LADDER.items():
        assert rows[name]["parameters"] == _count(factory())
        assert rows[name]["description"]
    assert rows["unet"]["parameters"] == 491_873
    assert rows["sccunet"]["parameters"] == 492_707
    assert [name for name, row in rows.items() if row["default"]] == ["unet-isam"]
    shipped = {name for name, row in rows.items() if row["shipped_weights"]}
    assert shipped == {"unet", "unet-isam", "sccunet"}
