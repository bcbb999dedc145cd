import pytest
import torch

from clipmorph.model.network import WIDTHS, TransformerNet, build_network

from conftest import random_network


@pytest.mark.parametrize("size", [(32, 32), (37, 50), (61, 17)])
def test_output_has_input_size_and_range(size):
    net = random_network()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x, torch.tensor([0, 1]))
    assert y.shape == x.shape
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_mixed_style_batch_equals_separate_runs():
    net = random_network(num_styles=3)
    x = torch.rand(3, 3, 40, 48)
    with torch.no_grad():
        together = net(x, torch.tensor([2, 0, 1]))
        apart = torch.cat([net(x[i : i + 1], torch.tensor([s])) for i, s in enumerate([2, 0, 1])])
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=1e-5)
    assert (together[0] - net(x[:1], torch.tensor([0]))[0]).abs().max() > 1e-2, "styles must differ"


def test_blend_mixes_the_style_vectors():
    net = random_network(num_styles=2)
    x = torch.rand(1, 3, 32, 32)
    blended_net = TransformerNet(net.spec, 1)
    blended_net.load_state_dict(net.backbone_state(), strict=False)
    halves = {k: (net.style_state(0)[k] + net.style_state(1)[k]) / 2 for k in net.style_state(0)}
    blended_net.load_styles([halves])
    with torch.no_grad():
        via_weights = net(x, torch.tensor([[0.5, 0.5]]))
        via_average = blended_net.eval()(x, torch.tensor([0]))
        one_hot = net(x, torch.tensor([[0.0, 1.0]]))
        index = net(x, torch.tensor([1]))
    torch.testing.assert_close(via_weights, via_average, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one_hot, index)


def test_split_and_rebuild_round_trip():
    net = random_network(num_styles=3)
    rebuilt = build_network(net.spec, net.backbone_state(), [net.style_state(i) for i in (2, 0)])
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x, torch.tensor([0])), net(x, torch.tensor([2])))
    assert all(not k.endswith((".scale", ".shift")) for k in net.backbone_state())


def test_style_from_another_shape_is_refused():
    lite, full = random_network("lite"), random_network("full")
    with pytest.raises(ValueError, match="shape"):
        build_network(lite.spec, lite.backbone_state(), [full.style_state(0)])
    with pytest.raises(ValueError, match="do not fit"):
        build_network(lite.spec, full.backbone_state(), [lite.style_state(0)])


def test_widths_and_single_style():
    full, lite = TransformerNet(WIDTHS["full"]), TransformerNet(WIDTHS["lite"])
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert full.num_styles == 1 and count(lite) < count(full) / 3
    assert len(full.residuals) == 5 and len(lite.residuals) == 3
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in full.modules())


def test_bad_style_selection_is_rejected():
    net = random_network(num_styles=2)
    with pytest.raises(ValueError):
        net(torch.rand(2, 3, 16, 16), torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        net(torch.rand(2, 3, 16, 16), torch.tensor([0]))


def test_channel_padded_rgb_convolutions_give_the_same_output():
    from clipmorph.model.fast_convs import with_padded_rgb_convs

    torch.manual_seed(1)
    net = TransformerNet(WIDTHS["lite"], 2).eval()
    padded = with_padded_rgb_convs(net)
    assert padded.conv1.conv.conv.in_channels == 8 and padded.out.conv.conv.out_channels == 8
    x = torch.rand(2, 3, 36, 52)
    with torch.no_grad():
        expected, got = net(x, torch.tensor([0, 1])), padded(x, torch.tensor([0, 1]))
    assert got.shape == expected.shape == (2, 3, 36, 52)
    assert torch.allclose(got, expected, atol=1e-5)
    assert net.conv1.conv.in_channels == 3  # the original is left as it was


@pytest.mark.parametrize(("block", "size"), [(2, (13, 22)), (4, (36, 52)), (4, (17, 30))])
def test_a_convolution_folded_into_pixel_blocks_gives_the_same_output(block, size):
    from clipmorph.model.fast_convs import SpaceToDepthConv
    from clipmorph.model.network import ConvLayer

    torch.manual_seed(2)
    layer = ConvLayer(5, 3, 9).eval()
    folded = SpaceToDepthConv(layer, block)
    assert folded.conv.in_channels == 5 * block * block and folded.conv.out_channels == 3 * block * block
    x = torch.rand(2, 5, *size)
    with torch.no_grad():
        assert torch.allclose(folded(x), layer(x), atol=1e-5)


def test_blocked_rgb_convolutions_give_the_same_network_output():
    from clipmorph.model.fast_convs import with_blocked_rgb_convs

    torch.manual_seed(3)
    net = TransformerNet(WIDTHS["lite"], 2).eval()
    blocked = with_blocked_rgb_convs(net)
    assert (blocked.conv1.conv.in_channels, blocked.conv1.conv.out_channels) == (48, 256)
    x, styles = torch.rand(2, 3, 36, 52), torch.tensor([[0.2, 0.8], [1.0, 0.0]])
    with torch.no_grad():
        assert torch.allclose(blocked(x, styles), net(x, styles), atol=1e-5)


# --- mean-only normalisation (no droplets) ---


def test_a_spec_keeps_its_normalisation_and_older_backbones_keep_their_versions():
    from clipmorph.model.network import NetworkSpec
    from clipmorph.styles.library import Backbone

    spec = WIDTHS["lite"].with_norm("mean")
    assert NetworkSpec.from_dict(spec.to_dict()) == spec and "norm" not in WIDTHS["lite"].to_dict()
    state = TransformerNet(WIDTHS["lite"]).backbone_state()
    assert Backbone("b", WIDTHS["lite"], state).version != Backbone("b", spec, state).version
    with pytest.raises(ValueError, match="unknown normalisation"):
        NetworkSpec(norm="batch")


@pytest.mark.parametrize("norm", ["mean", "mean-after-encoder"])
def test_moving_to_mean_norm_keeps_the_output_on_the_photo_it_was_measured_on(norm):
    from clipmorph.training.renorm import to_mean_norm

    net = random_network("lite", num_styles=3, seed=4)
    photo = torch.rand(1, 3, 40, 56)
    moved = to_mean_norm(net, photo, norm)
    assert moved.spec.norm == norm and moved.num_styles == 3
    encoder_mean_only = [moved.norm1.mean_only, moved.norm2.mean_only, moved.norm3.mean_only]
    assert encoder_mean_only == [norm == "mean"] * 3 and moved.norm5.mean_only
    with torch.no_grad():
        for style in range(3):
            index = torch.tensor([style])
            torch.testing.assert_close(moved(photo, index), net(photo, index), atol=2e-4, rtol=0)
    with pytest.raises(ValueError, match="already"):
        to_mean_norm(moved, photo)


def test_under_mean_norm_a_spike_does_not_dim_the_rest_of_its_feature_map():
    """The droplet mechanism: instance norm divides a map by a spread that one spike inflates,
    so the rest of the map dims; mean-only norm leaves the rest as it was."""
    from clipmorph.model.network import ConditionalInstanceNorm2d

    features = torch.randn(1, 4, 32, 32)
    spiked = features.clone()
    spiked[0, :, 3, 3] = 300.0
    one_style = torch.ones(1, 1)
    away = (slice(None), slice(None), slice(16, None), slice(16, None))  # far from the spike
    for norm, dims in (("instance", True), ("mean", False)):
        layer = ConditionalInstanceNorm2d(4, 1, norm=norm)
        plain, with_spike = layer(features, one_style)[away], layer(spiked, one_style)[away]
        ratio = (with_spike.std() / plain.std()).item()
        assert (ratio < 0.5) == dims, (norm, ratio)
