"""Training style networks: a new backbone with its styles, or new styles on a frozen backbone.

From scratch, every batch deals the styles round-robin over its images, so one backbone
learns all of them at once (Dumoulin et al. 2017). Adding a style freezes the backbone and
learns only that style's scale/shift vectors, which is small and fast. Either way the loss is
perceptual (content + Gram style + TV) plus the temporal terms of ``clipmorph.training.temporal``.
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from clipmorph.errors import BadInput, TrainingStopped
from clipmorph.inference.engine import pick_device, pick_dtype
from clipmorph.model.network import WIDTHS, TransformerNet, build_network
from clipmorph.model.vgg import VGGFeatures
from clipmorph.styles.library import Style, StyleLibrary, validate_name
from clipmorph.training.data import (
    RandomCrops,
    SampleStream,
    find_images,
    fit_long_side,
    load_rgb,
    sha256_file,
    to_tensor,
)
from clipmorph.training.objective import CONTENT_LAYER, STYLE_LAYERS, content_loss, gram_matrix, total_variation
from clipmorph.training.spikes import SpikeMonitor
from clipmorph.training.temporal import MotionRange, noise_stability_loss, warp_consistency_loss
from clipmorph.training.tracking import Tracker

log = logging.getLogger(__name__)
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
SAMPLES_SHOWN = 8  # styles in a sample grid


@dataclass
class StyleSource:
    """One style to learn: its id, the painting, and how strongly to weigh its style loss."""

    id: str
    image: Path
    style_weight: float = 1.0  # multiplies TrainConfig.style_weight for this style only
    metadata: dict = field(default_factory=dict)  # display_name, artist, title, year, ...

    def __post_init__(self) -> None:
        validate_name(self.id)
        self.image = Path(self.image)


@dataclass
class TrainConfig:
    styles: list[StyleSource]
    content: list[Path]  # photo folders, searched recursively
    checkpoint_dir: Path
    width: str = "full"
    backbone_name: str = "custom"
    add_to: str | None = None  # style id or backbone name in the store: learn only the new styles' vectors
    init_from: Path | None = None  # a catalogue folder whose backbone (and same-id styles) start a new run
    steps: int = 4000
    batch_size: int = 4
    image_size: int = 256
    style_size: int = 512  # long side of the painting when its Gram targets are taken
    lr: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e3
    noise_weight: float = 2e6  # seed's noise-stability term (pixel MSE)
    noise_sigma: float = 0.04
    warp_weight: float = 4e6  # warp-consistency term (pixel MSE on the valid region)
    spike_weight: float = 0.0  # penalty on feature spikes under instance norm (clipmorph.training.spikes): no droplets
    spike_threshold: float = 6.0
    motion: MotionRange = field(default_factory=MotionRange)
    temporal_images: int = 2  # images per batch that get the temporal terms (0: all); each costs 2 passes
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 where native), bfloat16, float16, float32
    compile: bool = False
    workers: int = 2
    checkpoint_every: int = 200
    sample_every: int = 200
    log_every: int = 10
    max_minutes: float | None = None  # stop (with a checkpoint) after this long: train in chunks
    wandb: bool = True
    wandb_project: str = "clipmorph"
    wandb_dir: Path | None = None  # default: the checkpoint folder

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
        folders = [self.content] if isinstance(self.content, str | Path) else self.content
        self.content, self.checkpoint_dir = [Path(f) for f in folders], Path(self.checkpoint_dir)
        if self.init_from is not None:
            if self.add_to:
                raise BadInput("--init-from starts a new backbone; --add-to keeps a stored one frozen: pick one")
            self.init_from = Path(self.init_from)

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["styles"] = [{**asdict(s), "image": str(s.image)} for s in self.styles]
        data["motion"] = asdict(self.motion)
        data["content"], data["checkpoint_dir"] = [str(f) for f in self.content], str(self.checkpoint_dir)
        data["wandb_dir"] = str(self.wandb_dir) if self.wandb_dir else None
        data["init_from"] = str(self.init_from) if self.init_from else None
        return data

    def hyperparameters(self) -> dict:
        """What a style's metadata records about how it was trained."""
        keep = ["width", "batch_size", "image_size", "style_size", "lr", "seed"]
        keep += ["content_weight", "style_weight", "tv_weight", "noise_weight", "noise_sigma", "warp_weight"]
        keep += ["temporal_images", "spike_weight", "spike_threshold"]
        # planned_steps: a run may stop early (time budget); the record's `steps` are the ones taken
        return {k: getattr(self, k) for k in keep} | {"planned_steps": self.steps, "motion": asdict(self.motion)}


@dataclass
class TrainResult:
    library: StyleLibrary  # the new styles (and the new backbone when trained from scratch)
    step: int
    finished: bool  # False when stopped early (time budget, cancel): resume to go on
    seconds: float
    losses: dict[str, float]
    checkpoint: Path


ProgressCallback = Callable[[int, int, dict[str, float], np.ndarray | None], None]


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mean_style(styles: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The average of styles' vectors: where a style new to a backbone starts."""
    return {k: torch.stack([p[k] for p in styles]).mean(0) for k in styles[0]}


def total_steps(training: dict) -> int:
    """All steps behind a training record, counting the runs it was continued from."""
    return training.get("total_steps", training["steps"])


class Trainer:
    """Owns the network, optimiser and loss network for one training run."""

    def __init__(self, config: TrainConfig, vgg_dir: Path | None = None, base: StyleLibrary | None = None) -> None:
        """``base``: the backbone (and its styles) that ``config.add_to`` names, when the caller
        already holds it (a catalogue folder, say); else it is looked up in the store."""
        self.config = config
        self.device = pick_device(config.device)
        self.amp_dtype = pick_dtype(self.device, "auto" if config.precision == "auto" else config.precision)
        self.channels_last = self.amp_dtype != torch.float32 or self.device.type == "cuda"
        torch.manual_seed(config.seed)
        self.vgg = VGGFeatures.load(vgg_dir).to(self.device)
        if self.channels_last:
            self.vgg = self.vgg.to(memory_format=torch.channels_last)
        self.base = base or StyleLibrary()  # the frozen backbone (and its styles) when adding styles
        self.earlier: dict | None = None  # training record of the weights a run started from (init_from)
        self.started_from: str | None = None  # where those weights were read
        self.net = self._build_network().to(self.device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=config.lr)
        self.forward = torch.compile(self.net) if config.compile else self.net
        self.spikes = SpikeMonitor(self.net, config.spike_threshold) if config.spike_weight else None
        self.targets = self._style_targets()
        self.style_weights = torch.tensor([s.style_weight for s in config.styles], device=self.device)
        self.step = 0
        self.seconds = 0.0
        self.averages: dict[str, float] = {}
        self.wandb_id: str | None = None

    # --- set-up ---

    def _build_network(self) -> TransformerNet:
        count = len(self.config.styles)
        if self.config.init_from:
            return self._network_from_catalogue(self.config.init_from)
        if not self.config.add_to:
            return TransformerNet(WIDTHS[self.config.width], count)
        if not self.base.backbones:
            from clipmorph.styles import store

            self.base = store.backbone_library(self.config.add_to)
        (backbone,) = self.base.backbones.values()
        existing = {s.id: s.params for s in self.base.styles.values()}
        if existing:
            # A style the backbone already has goes on from its own vectors (refining it, e.g.
            # with a stronger style weight, without touching the others); a new one starts from
            # the average of the backbone's styles: a neutral point between them.
            mean = mean_style(list(existing.values()))
            starts = [{k: v.float() for k, v in existing.get(s.id, mean).items()} for s in self.config.styles]
            net = build_network(backbone.spec, backbone.state, starts)
        else:
            net = TransformerNet(backbone.spec, count)
            net.load_state_dict(backbone.state, strict=False)
        for name, param in net.named_parameters():
            param.requires_grad = name.endswith((".scale", ".shift"))
        return net

    def _network_from_catalogue(self, folder: Path) -> TransformerNet:
        """Go on from exported weights (a new optimiser, possibly new loss weights): the
        backbone of this width, each style's vectors where the catalogue has that id."""
        from clipmorph.styles.catalogue import read_catalogue

        library = read_catalogue(folder)
        spec = WIDTHS[self.config.width]
        backbones = [b for b in library.backbones.values() if b.spec == spec]
        if len(backbones) != 1:
            raise BadInput(f"{folder} holds {len(backbones)} backbones of width {self.config.width}, need one")
        backbone = backbones[0]
        known = {s.id: s.params for s in library.styles.values() if s.backbone == backbone.key}
        if not known:
            raise BadInput(f"{folder}: backbone {backbone.name} has no styles")
        mean = mean_style(list(known.values()))
        self.earlier, self.started_from = backbone.metadata.get("training"), str(folder)
        params = [known.get(source.id, mean) for source in self.config.styles]
        return build_network(spec, backbone.state, [{k: v.float() for k, v in p.items()} for p in params])

    def _style_targets(self) -> dict[str, Tensor]:
        """Gram targets, stacked over styles: layer -> (num_styles, C, C)."""
        per_style = []
        for source in self.config.styles:
            try:
                image = fit_long_side(load_rgb(source.image), self.config.style_size)
            except (OSError, ValueError) as error:
                raise BadInput(f"cannot read style image {source.image}: {error}") from error
            with torch.no_grad():
                feats = self.vgg(to_tensor(image)[None].to(self.device), STYLE_LAYERS)
            per_style.append({k: gram_matrix(v)[0] for k, v in feats.items()})
        return {k: torch.stack([g[k] for g in per_style]) for k in STYLE_LAYERS}

    # --- checkpoints ---

    @property
    def checkpoint_path(self) -> Path:
        return self.config.checkpoint_dir / CHECKPOINT_FILE

    def save_checkpoint(self) -> Path:
        """Atomic: a crash while writing never spoils the previous checkpoint."""
        self.config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "step": self.step,
            "seconds": self.seconds,
            "averages": self.averages,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "wandb_id": self.wandb_id,
            "earlier": self.earlier,
        }
        partial = self.checkpoint_path.with_name(f".{CHECKPOINT_FILE}.{os.getpid()}")
        torch.save(state, partial)
        os.replace(partial, self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self) -> None:
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise BadInput(f"{self.checkpoint_path} is not a clipmorph checkpoint of format {CHECKPOINT_FORMAT}")
        saved = state["config"]
        mine = self.config.to_dict()
        for key in ("width", "add_to", "backbone_name"):
            if saved[key] != mine[key]:
                raise BadInput(f"checkpoint was trained with {key}={saved[key]!r}, not {mine[key]!r}")
        if [s["id"] for s in saved["styles"]] != [s.id for s in self.config.styles]:
            raise BadInput("checkpoint holds different styles: " + ", ".join(s["id"] for s in saved["styles"]))
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.seconds = state["step"], state["seconds"]
        self.averages, self.wandb_id = state["averages"], state.get("wandb_id")
        self.earlier = state.get("earlier", self.earlier)
        self.started_from = saved.get("init_from") or self.started_from

    # --- the loop ---

    def losses(self, content: Tensor, styles: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        cfg = self.config

        sub = slice(0, cfg.temporal_images or None)

        def stylize(x: Tensor) -> Tensor:
            return self.forward(x, styles[sub])

        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype != torch.float32):
            output = self.forward(content, styles)
            spikes = self.spikes.penalty() if self.spikes else None
            out_feats = self.vgg(output, set(STYLE_LAYERS) | {CONTENT_LAYER})
            with torch.no_grad():
                target_feats = self.vgg(content, [CONTENT_LAYER])
            per_image_style = sum(
                ((gram_matrix(out_feats[k]) - self.targets[k][styles]) ** 2).mean((1, 2)) for k in STYLE_LAYERS
            )
            losses = {
                "content": cfg.content_weight * content_loss(out_feats[CONTENT_LAYER], target_feats[CONTENT_LAYER]),
                "style": cfg.style_weight * (per_image_style * self.style_weights[styles]).mean(),
                "tv": cfg.tv_weight * total_variation(output),
            }
            if cfg.noise_weight:
                noise = noise_stability_loss(stylize, content[sub], output[sub], cfg.noise_sigma, generator)
                losses["noise"] = cfg.noise_weight * noise
            if cfg.warp_weight:
                warp = warp_consistency_loss(stylize, content[sub], output[sub], cfg.motion, generator)
                losses["warp"] = cfg.warp_weight * warp
            if spikes is not None:
                losses["spikes"] = cfg.spike_weight * spikes
                self.spikes.peaks = []  # the temporal passes' records are not penalised twice
        losses["total"] = sum(losses.values())
        self._per_style = per_image_style.detach()
        return losses

    def run(
        self,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        show_bar: bool = True,
    ) -> TrainResult:
        cfg = self.config
        tracker = Tracker(
            cfg.wandb, cfg.wandb_project, f"{cfg.backbone_name}-{cfg.styles[0].id}", cfg.to_dict(),
            cfg.wandb_dir or cfg.checkpoint_dir, self.wandb_id,
        )  # fmt: skip
        self.wandb_id = tracker.run_id
        paths = [path for folder in cfg.content for path in find_images(folder)]
        self.content_images = len(paths)
        loader = DataLoader(
            RandomCrops(paths, cfg.image_size, seed=cfg.seed),
            batch_size=cfg.batch_size,
            sampler=SampleStream(self.step * cfg.batch_size),
            num_workers=cfg.workers,
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if cfg.workers else None,
        )
        preview = self._preview_batch(paths)
        bar = None
        if show_bar:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True)
        started, previous_seconds = time.monotonic(), self.seconds
        interrupted = threading.Event()
        previous_handler = None
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C asks the loop to stop at the next step boundary (never mid-step or mid-save).
            previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
        budget = cfg.max_minutes * 60 if cfg.max_minutes else None
        stopped = False
        self.net.train()
        try:
            for batch in loader:
                if interrupted.is_set():
                    raise KeyboardInterrupt
                if self.step >= cfg.steps:
                    break
                if (should_stop and should_stop()) or (budget and time.monotonic() - started > budget):
                    stopped = True
                    break
                self._train_step(batch)
                self.seconds = previous_seconds + time.monotonic() - started
                if bar:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in self.averages.items() if not k.startswith("style/")})
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    tracker.log({f"loss/{k}": v for k, v in self.averages.items()} | {"lr": cfg.lr}, self.step)
                grid = None
                if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                    grid = self.sample_grid(preview)
                    tracker.log_image("samples", grid, self.step, "input | output per style")
                    self._save_grid(grid)
                if progress:
                    progress(self.step, cfg.steps, dict(self.averages), grid)
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            checkpoint = self.save_checkpoint()
            tracker.finish({"interrupted_at_step": self.step})
            raise TrainingStopped(
                f"interrupted at step {self.step}; checkpoint saved to {checkpoint}: rerun with --resume"
            ) from None
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if bar:
                bar.close()
        checkpoint = self.save_checkpoint()
        finished = self.step >= cfg.steps and not stopped
        tracker.finish({f"final/{k}": v for k, v in self.averages.items()} | {"steps": self.step})
        return TrainResult(self.result_library(), self.step, finished, self.seconds, dict(self.averages), checkpoint)

    def _train_step(self, batch: Tensor) -> None:
        cfg = self.config
        content = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            content = content.contiguous(memory_format=torch.channels_last)
        count = len(cfg.styles)
        # Round-robin over styles: every style gets the same number of images, in any order of steps.
        first = self.step * cfg.batch_size
        styles = torch.arange(first, first + content.shape[0], device=self.device) % count
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
        losses = self.losses(content, styles, generator)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        self.step += 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        for index, value in zip(styles.tolist(), self._per_style.tolist(), strict=True):
            values[f"style/{cfg.styles[index].id}"] = value * cfg.style_weight * cfg.styles[index].style_weight
        for key, value in values.items():  # smoothed for display, logs and metadata
            old = self.averages.get(key)
            self.averages[key] = value if old is None else 0.9 * old + 0.1 * value

    # --- outputs ---

    def _preview_batch(self, paths: list[Path], count: int = 2) -> Tensor:
        """Fixed photos (centre crops of the first content images) shown in every sample grid."""
        images = []
        for path in paths[:count]:
            image = load_rgb(path)
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side)).resize((self.config.image_size,) * 2)
            images.append(to_tensor(image))
        return torch.stack(images)

    def _save_grid(self, grid: np.ndarray) -> None:
        from PIL import Image

        folder = self.config.checkpoint_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(folder / f"step-{self.step:06d}.jpg", quality=90)

    @torch.no_grad()
    def sample_grid(self, photos: Tensor) -> np.ndarray:
        """Rows: photos; columns: the photo, then its stylization by each style (up to 8)."""
        self.net.eval()
        shown = min(len(self.config.styles), SAMPLES_SHOWN)
        x = photos.to(self.device)
        columns = [x.float().cpu()]
        for index in range(shown):
            styles = torch.full((x.shape[0],), index, device=self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype != torch.float32):
                columns.append(self.net(x, styles).float().cpu())
        self.net.train()
        rows = [torch.cat([column[i] for column in columns], dim=2) for i in range(x.shape[0])]
        grid = torch.cat(rows, dim=1)
        return grid.permute(1, 2, 0).mul(255).round().clamp(0, 255).to(torch.uint8).numpy()

    def result_library(self) -> StyleLibrary:
        """The trained styles (and new backbone) as store-ready data with full metadata."""
        cfg = self.config
        # A copy in plain layout on the CPU: safetensors stores contiguous tensors only.
        net = copy.deepcopy(self.net).float().cpu().to(memory_format=torch.contiguous_format)
        trained = {
            "mode": "add-style" if cfg.add_to else "from-scratch",
            "steps": self.step,
            "seconds": round(self.seconds, 1),
            "device": describe_device(self.device),
            "precision": str(self.amp_dtype).removeprefix("torch."),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch": str(torch.__version__),
            "content_images": self.content_images,
            **cfg.hyperparameters(),
        }
        if self.earlier:  # steps before this run count too; how they were trained stays on record
            trained["total_steps"] = total_steps(self.earlier) + self.step
            trained["started_from"] = {"catalogue": self.started_from, "training": self.earlier}
        metas = []
        for source in cfg.styles:
            meta = {"display_name": source.id, **source.metadata}
            meta |= {
                "style_image": source.image.name,
                "style_image_sha256": sha256_file(source.image),
                "style_loss_weight": source.style_weight,
                "training": self._refined_record(source.id, trained),
                "final_losses": {
                    "style": round(self.averages.get(f"style/{source.id}", float("nan")), 4),
                    **{k: round(v, 4) for k, v in self.averages.items() if "/" not in k},
                },
            }
            metas.append(meta)
        if not cfg.add_to:
            backbone_meta = {"training": trained, "styles": [s.id for s in cfg.styles]}
            ids = [s.id for s in cfg.styles]
            library = StyleLibrary.from_network(net, cfg.backbone_name, ids, backbone_meta, metas)
        else:
            library = StyleLibrary()
            (backbone,) = self.base.backbones.values()
            library.add_backbone(backbone)
            for index, (source, meta) in enumerate(zip(cfg.styles, metas, strict=True)):
                library.add_style(Style(source.id, backbone.key, net.style_state(index), meta))
        return library

    def _refined_record(self, style_id: str, trained: dict) -> dict:
        """A re-learned style keeps the record of how it was trained before, as a resumed
        from-scratch run does; its steps count on from there."""
        known = self.base.styles.get(style_id)  # base holds styles only when adding to a backbone
        earlier = known.metadata.get("training") if known else None
        if not earlier or "steps" not in earlier:
            return trained
        return trained | {
            "mode": "refine",
            "total_steps": total_steps(earlier) + self.step,
            "started_from": {"style": style_id, "training": earlier},
        }


def train(config: TrainConfig, resume: bool = False, base: StyleLibrary | None = None, **run_options) -> TrainResult:
    """Train (or resume) per ``config``; the caller saves ``result.library`` where it wants."""
    trainer = Trainer(config, base=base)
    if resume and trainer.checkpoint_path.exists():
        trainer.load_checkpoint()
        # A resumed run may be asked to go further than the interrupted one planned.
        log.info("resumed from %s at step %d", trainer.checkpoint_path, trainer.step)
    elif resume:
        log.info("no checkpoint at %s: starting from scratch", trainer.checkpoint_path)
    return trainer.run(**run_options)


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
        sources.append(StyleSource(style_id, image, weight, entry))
    return dict(data.get("backbone", {})), sources
