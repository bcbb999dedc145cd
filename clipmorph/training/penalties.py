"""The optional per-style penalties: terms only some paintings need, each weighed per style.

A style's own weight (``<setting>`` in ``training/catalogue.toml``) replaces the run's
(``--<setting>``); only images of a style with a weight above 0 pay the term. One table, so the
config's checks, the trainer's losses, the style's record, the resume check and the REPORT's
recipe treat every penalty the same way, and another penalty is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from clipmorph.training.calm import calm_excess
from clipmorph.training.stray_lines import stray_excess


@dataclass(frozen=True)
class StylePenalty:
    loss: str  # the term's name among the losses (logs, progress bar, W&B)
    setting: str  # its weight's name: TrainConfig, StyleSource, catalogue.toml, the style's record
    title: str  # how the REPORT's recipe and error messages name it
    excess: Callable[[Tensor, Tensor], Tensor]  # (output, photo) -> per image (B,), >= 0


STYLE_PENALTIES = (
    StylePenalty("calm", "calm_weight", "calm-area lattice penalty", calm_excess),
    StylePenalty("lines", "line_weight", "stray-line penalty", stray_excess),
)
PENALTY_SETTINGS = tuple(p.setting for p in STYLE_PENALTIES)
