"""The service on the GPU (`python -m bench --sections gpu_service --merge` on a CUDA machine):
`full` styles, 1/4/16 clients, adaptive batching against BentoML's smallest batch."""

from __future__ import annotations

import torch

from bench.gpu import device_name
from bench.service import service_rows


def run(quick: bool = False) -> list[dict]:
    if not torch.cuda.is_available():
        print("gpu_service: no CUDA device here; nothing measured")
        return []
    rows = service_rows("gpu_service", "full", quick, {"CLIPMORPH_DEVICE": "cuda"})
    return [row | {"gpu": device_name()} for row in rows]
