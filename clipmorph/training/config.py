"""What a training run is asked to do: the styles, the photos, the loss weights, the schedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from clipmorph.errors import BadInput
from clipmorph.inference.options import mark_scale_of
from clipmorph.locations import Location, is_url, local_or_url
from clipmorph.model.network import WIDTHS, NetworkSpec
from clipmorph.styles.library import StyleLibrary
from clipmorph.styles.names import validate_name
from clipmorph.training.penalties import PENALTY_SETTINGS, STYLE_PENALTIES
from clipmorph.training.temporal import MotionRange

CROP_PATHS = ("auto", "device", "loader")


def valid_scales(scales, who: str = "") -> tuple[float, ...]:
    """Coarse style scales as distinct factors between 0 and 1 (BadInput otherwise)."""
    try:
        factors = tuple(float(f) for f in scales)
    except (TypeError, ValueError):
        factors = None
    if factors is None or any(not 0 < f < 1 for f in factors) or len(set(factors)) != len(factors):
        raise BadInput(f"{who}coarse style scales must be distinct factors between 0 and 1, got {scales!r}")
    return factors


@dataclass
class StyleSource:
    """One style to learn: its id, the painting, and how strongly to weigh its style loss."""

    id: str
    image: Path
    style_weight: float = 1.0  # multiplies TrainConfig.style_weight for this style only
    metadata: dict = field(default_factory=dict)  # display_name, artist, title, year, ...
    temporal_weight: float = 1.0  # multiplies the noise and warp weights for this style only (busy styles flicker)
    teacher_weight: float = 1.0  # multiplies TrainConfig.teacher_weight for this style only
    # Long side of this painting when its Gram targets are taken (default: TrainConfig.style_size):
    # the smaller the painting, the larger its marks come out on the photos.
    style_size: int | None = None
    # This style's coarse scales of the style term (default: TrainConfig.coarse_scales): (0.5,)
    # also asks for the painting's marks at twice their size (clipmorph.training.objective).
    coarse_scales: tuple[float, ...] | None = None
    # Gram targets from the painting turned every 45 degrees (objective.painting_grams): its
    # strokes may run any way on the photo, not the painting's one main way everywhere.
    any_direction: bool | None = None  # None: the run's
    # Weight of the calm-area lattice penalty (clipmorph.training.calm) for this style, in place of
    # TrainConfig.calm_weight: a faint lattice (Scream) needs a weight that would flatten the strokes
    # another painting puts in its skies.
    calm_weight: float | None = None
    # Weight of the stray-line penalty (clipmorph.training.stray_lines) for this style, in place of
    # TrainConfig.line_weight: only paintings whose Gram terms draw outlines and rings everywhere need it.
    line_weight: float | None = None

    def __post_init__(self) -> None:
        validate_name(self.id)
        self.image = Path(self.image)
        if self.coarse_scales is not None:
            self.coarse_scales = valid_scales(self.coarse_scales, f"style {self.id}: ")


@dataclass
class TrainConfig:
    styles: list[StyleSource]
    content: list[Path]  # photo folders, searched recursively
    checkpoint_dir: Location  # a folder, or an fsspec URL (s3://bucket/run)
    width: str = "full"
    backbone_name: str = "custom"
    add_to: str | None = None  # style id or backbone name in the store: learn only the new styles' vectors
    init_from: Path | None = None  # a catalogue folder whose backbone (and same-id styles) start a new run
    steps: int = 4000
    batch_size: int = 4
    image_size: int = 256
    style_size: int = 512  # long side of the painting when its Gram targets are taken
    # Extra scales of the style term (factors < 1: output and painting both shrunk; objective.py):
    # (0.5,) also asks for the painting's marks at twice their size. Empty: one scale.
    coarse_scales: tuple[float, ...] = ()
    any_direction: bool = False  # every painting's Gram targets from it turned every 45 degrees
    lr: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e3
    noise_weight: float = 2e6  # seed's noise-stability term (pixel MSE)
    noise_sigma: float = 0.04
    warp_weight: float = 4e6  # warp-consistency term (pixel MSE on the valid region)
    spot_weight: float = 0.0  # droplet penalty (clipmorph.training.spots): 0 leaves it out
    calm_weight: float = 0.0  # fine lattice in the photo's calm areas (clipmorph.training.calm): 0 leaves it out
    line_weight: float = 0.0  # dark lines the photo does not draw (clipmorph.training.stray_lines): 0 leaves it out
    teacher_dir: Path | None = None  # cached teacher renderings (clipmorph.training.teacher); None: no anchor
    teacher_weight: float = 0.0  # weight of the distance to them (pooled pixels, L1)
    norm: str = "instance"  # new backbones: instance, or mean (no droplets; see NetworkSpec)
    motion: MotionRange = field(default_factory=MotionRange)
    temporal_images: int = 2  # images per batch that get the temporal terms (0: all); each costs 2 passes
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 where native), bfloat16, float16, float32
    compile: bool = False
    workers: int = 2
    # Where crops are cut: "device" decodes every photo once onto the training device and cuts
    # there (clipmorph.training.device_crops: what a GPU needs to be fed), "loader" in ``workers``
    # processes with PIL, "auto" the first on a GPU and the second on the CPU.
    crops: str = "auto"
    checkpoint_every: int = 200
    sample_every: int = 200
    log_every: int = 10
    max_minutes: float | None = None  # stop (with a checkpoint) after this long: train in chunks
    wandb: bool = True
    wandb_project: str = "clipmorph"
    wandb_dir: Path | None = None  # default: the checkpoint folder (runs/<name> when that is a URL)

    def __post_init__(self) -> None:
        if not self.styles:
            raise BadInput("give at least one style image")
        ids = [s.id for s in self.styles]
        if len(set(ids)) != len(ids):
            raise BadInput(f"style ids must be unique: {ids}")
        if self.width not in WIDTHS:
            raise BadInput(f"unknown width {self.width!r}; choose from {', '.join(WIDTHS)}")
        validate_name(self.backbone_name, "backbone name")
        if self.steps < 1 or self.batch_size < 1 or self.image_size < 32 or self.style_size < 32:
            raise BadInput("steps and batch size must be >= 1, image and style sizes >= 32")
        for penalty in STYLE_PENALTIES:
            weights = [getattr(self, penalty.setting), *(getattr(s, penalty.setting) for s in self.styles)]
            if any(w is not None and w < 0 for w in weights):  # the run's too, whether a style uses it or not
                raise BadInput(f"the {penalty.title}'s weight must be >= 0 (0: none), not {penalty.setting} < 0")
        folders = [self.content] if isinstance(self.content, str | Path) else self.content
        self.content, self.checkpoint_dir = [Path(f) for f in folders], local_or_url(self.checkpoint_dir)
        self.coarse_scales = valid_scales(self.coarse_scales)
        if self.crops not in CROP_PATHS:
            raise BadInput(f"unknown crop path {self.crops!r}; choose from {', '.join(CROP_PATHS)}")
        if self.teacher_weight and self.teacher_dir is None:
            raise BadInput("a teacher weight needs the teacher renderings' folder (--teacher-dir)")
        self.teacher_dir = Path(self.teacher_dir) if self.teacher_dir is not None else None
        if self.init_from is not None:
            if self.add_to:
                raise BadInput("--init-from starts a new backbone; --add-to keeps a stored one frozen: pick one")
            self.init_from = Path(self.init_from)

    def any_direction_of(self, source: StyleSource) -> bool:
        """Whether this style's strokes may run in any direction: its own say, else the run's."""
        return self.any_direction if source.any_direction is None else source.any_direction

    def penalty_weight_of(self, source: StyleSource, setting: str) -> float:
        """The weight of one of this style's optional penalties (``setting``, e.g. ``calm_weight``;
        clipmorph.training.penalties): its own, else the run's."""
        own = getattr(source, setting)
        return getattr(self, setting) if own is None else own

    def scales_of(self, source: StyleSource) -> tuple[float, ...]:
        """The coarse style scales this style trains with: its own, else the run's."""
        return self.coarse_scales if source.coarse_scales is None else source.coarse_scales

    @property
    def local_dir(self) -> Path:
        """This machine's folder for the run's sample grids (and W&B files, unless ``wandb_dir``)."""
        if is_url(self.checkpoint_dir):
            return Path(self.wandb_dir or "runs") / self.backbone_name
        return Path(self.checkpoint_dir)

    @property
    def spec(self) -> NetworkSpec:
        """The shape of a backbone this run creates (from scratch or from a catalogue's weights)."""
        return WIDTHS[self.width].with_norm(self.norm)

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["styles"] = [{**asdict(s), "image": str(s.image)} for s in self.styles]
        data["motion"] = asdict(self.motion)
        data["coarse_scales"] = list(self.coarse_scales)
        data["content"], data["checkpoint_dir"] = [str(f) for f in self.content], str(self.checkpoint_dir)
        data["wandb_dir"] = str(self.wandb_dir) if self.wandb_dir else None
        data["init_from"] = str(self.init_from) if self.init_from else None
        data["teacher_dir"] = str(self.teacher_dir) if self.teacher_dir else None
        return data

    def hyperparameters(self) -> dict:
        """What a style's metadata records about how it was trained."""
        keep = ["width", "batch_size", "image_size", "style_size", "lr", "seed"]
        keep += ["content_weight", "style_weight", "tv_weight", "noise_weight", "noise_sigma", "warp_weight"]
        keep += ["spot_weight", "temporal_images", "norm", "teacher_weight"]
        extra = {s: getattr(self, s) for s in PENALTY_SETTINGS if getattr(self, s)}  # absent: no such term
        extra |= {"coarse_scales": list(self.coarse_scales)} if self.coarse_scales else {}  # absent: one scale
        extra |= {"any_direction": True} if self.any_direction else {}  # absent: the painting's directions
        # planned_steps: a run may stop early (time budget); the record's `steps` are the ones taken
        return {k: getattr(self, k) for k in keep} | {
            "planned_steps": self.steps,
            "motion": asdict(self.motion),
            **extra,
        }


@dataclass
class TrainResult:
    library: StyleLibrary  # the new styles (and the new backbone when trained from scratch)
    step: int
    finished: bool  # False when stopped early (time budget, cancel): resume to go on
    seconds: float
    losses: dict[str, float]
    checkpoint: Location
    main: bool = True  # rank 0 (or the only process): the one that reports and saves


ProgressCallback = Callable[[int, int, dict[str, float], np.ndarray | None], None]


def styles_from_toml(path: Path, styles_dir: Path) -> tuple[dict, list[StyleSource]]:
    """Read a style list (e.g. training/catalogue.toml): its [backbone] table and its styles,
    whose ``style_file`` names are looked up in ``styles_dir``."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise BadInput(f"cannot read style list {path}: {error}") from error
    sources = []
    for entry in data.get("style", []):
        entry = dict(entry)
        image = Path(styles_dir) / entry.pop("style_file")
        if not image.is_file():
            raise BadInput(f"style image {image} not found (set --styles-dir)")
        style_id = entry.pop("id")
        weight = float(entry.pop("style_weight", 1.0))
        temporal = float(entry.pop("temporal_weight", 1.0))
        teacher = float(entry.pop("teacher_weight", 1.0))
        size = entry.pop("style_size", None)
        scales = entry.pop("coarse_scales", None)
        any_direction = entry.pop("any_direction", None)
        if "mark_scale" in entry:  # shown, not trained: it stays in the metadata, checked here
            mark_scale_of(entry, style_id)
        if weight <= 0 or temporal <= 0 or teacher < 0:
            raise BadInput(f"style {style_id}: style_weight and temporal_weight must be > 0, teacher_weight >= 0")
        if size is not None and (not isinstance(size, int) or size < 32):
            raise BadInput(f"style {style_id}: style_size must be a whole number of pixels >= 32")
        if scales is not None and not isinstance(scales, list):
            raise BadInput(f"style {style_id}: coarse_scales must be a list of factors, e.g. [0.5]")
        if any_direction is not None and not isinstance(any_direction, bool):
            raise BadInput(f"style {style_id}: any_direction must be true or false")
        own = {
            "temporal_weight": temporal, "teacher_weight": teacher, "style_size": size,
            "coarse_scales": scales, "any_direction": any_direction,
            **{name: penalty_weight(entry, name, style_id) for name in PENALTY_SETTINGS},
        }  # fmt: skip
        sources.append(StyleSource(style_id, image, weight, entry, **own))
    return dict(data.get("backbone", {})), sources


def penalty_weight(entry: dict, name: str, style_id: str) -> float | None:
    """A style's own weight of one of the optional penalties (taken out of ``entry``), or None."""
    value = entry.pop(name, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadInput(f"style {style_id}: {name} must be a number >= 0")
    return float(value)
