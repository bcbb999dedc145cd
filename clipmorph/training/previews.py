"""Sample grids: fixed photos and their stylization by each style, as training goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from clipmorph.model.network import TransformerNet
from clipmorph.training.pictures import load_rgb, to_tensor

SAMPLES_SHOWN = 8  # styles in a sample grid


def preview_batch(paths: list[Path], size: int, count: int = 2) -> Tensor:
    """Fixed photos (centre crops of the first content images) shown in every sample grid."""
    images = []
    for path in paths[:count]:
        image = load_rgb(path)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        images.append(to_tensor(image.crop((left, top, left + side, top + side)).resize((size, size))))
    return torch.stack(images)


@torch.no_grad()
def sample_grid(net: TransformerNet, photos: Tensor, device: torch.device, dtype: torch.dtype) -> np.ndarray:
    """Rows: photos; columns: the photo, then its stylization by each style (up to 8)."""
    was_training = net.training
    net.eval()
    x = photos.to(device)
    columns = [x.float().cpu()]
    for index in range(min(net.num_styles, SAMPLES_SHOWN)):
        styles = torch.full((x.shape[0],), index, device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            columns.append(net(x, styles).float().cpu())
    net.train(was_training)
    rows = [torch.cat([column[i] for column in columns], dim=2) for i in range(x.shape[0])]
    grid = torch.cat(rows, dim=1)
    return grid.permute(1, 2, 0).mul(255).round().clamp(0, 255).to(torch.uint8).numpy()


def save_grid(grid: np.ndarray, folder: Path, step: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:06d}.jpg"
    Image.fromarray(grid).save(path, quality=90)
    return path
