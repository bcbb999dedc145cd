"""The VGG19 loss network of every training: the cache's converted weights, else the store's
(``clipmorph vgg fetch`` writes both; a bento or a container carries only the store). BentoML
is imported only for the store, so a machine without it trains from a weights file."""

from __future__ import annotations

import os

from clipmorph.model.vgg import VGGFeatures, VGGWeightsMissing


def load_vgg(directory: str | os.PathLike | None = None) -> VGGFeatures:
    try:
        return VGGFeatures.load(directory)
    except VGGWeightsMissing:
        from clipmorph.styles import assets  # BentoML: only when the cache has no weights

        stored = assets.loss_network_file()
        if stored is None:
            raise VGGWeightsMissing(
                "the VGG19 loss network is neither in the cache nor in the model store: run `clipmorph vgg fetch`"
            ) from None
        return VGGFeatures.from_file(stored)
