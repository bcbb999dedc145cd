"""Training style networks: a new backbone with its styles, or new styles on a frozen backbone.

From scratch, every batch deals the styles round-robin over its images, so one backbone
learns all of them at once (Dumoulin et al. 2017). Adding a style freezes the backbone and
learns only that style's scale/shift vectors, which is small and fast. This module is the
loop; the pieces it wires live where their names say: ``config``, ``starts`` (initial
weights), ``objective`` (+ ``temporal``), ``checkpoints``, ``previews``, ``record``.
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from clipmorph.errors import BadInput, TrainingStopped
from clipmorph.inference.engine import pick_device, pick_dtype
from clipmorph.styles.library import StyleLibrary
from clipmorph.training import checkpoints, previews, record
from clipmorph.training.config import ProgressCallback, TrainConfig, TrainResult
from clipmorph.training.data import RandomCrops, find_images
from clipmorph.training.device_crops import DeviceCrops
from clipmorph.training.distributed import ShardedSampleStream, World
from clipmorph.training.loss_network import load_vgg
from clipmorph.training.objective import LossWeights, PerceptualObjective
from clipmorph.training.penalties import STYLE_PENALTIES
from clipmorph.training.pictures import fit_long_side, load_rgb, to_tensor
from clipmorph.training.spots import spot_penalty
from clipmorph.training.starts import starting_network
from clipmorph.training.teacher import covered_photos, teacher_distance
from clipmorph.training.temporal import noise_stability_loss, warp_consistency_loss
from clipmorph.training.tracking import Tracker

log = logging.getLogger(__name__)
STOPPED, INTERRUPTED = 1, 2  # why a run ends early: asked to stop (budget, cancel), or a signal


class Trainer:
    """Owns the network, optimiser and objective of one training run (of one of its processes,
    under ``torchrun``: see ``clipmorph.training.distributed``)."""

    def __init__(self, config: TrainConfig, vgg_dir: Path | None = None, base: StyleLibrary | None = None) -> None:
        self.config = config
        self.world = World.from_env()
        self.local_batch = self.world.local_batch(config.batch_size)
        self.device = self.world.device(pick_device(config.device))
        self.world.join(self.device)
        self.amp_dtype = pick_dtype(self.device, "auto" if config.precision == "auto" else config.precision)
        self.channels_last = self.amp_dtype != torch.float32 or self.device.type == "cuda"
        torch.manual_seed(config.seed)
        vgg = load_vgg(vgg_dir).to(self.device)
        start = starting_network(config, base)
        self.base, self.earlier, self.started_from = start.base, start.earlier, start.started_from
        self.style_records = start.style_records
        self.net = start.net.to(self.device)
        if self.channels_last:
            vgg = vgg.to(memory_format=torch.channels_last)
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=config.lr)
        self.forward = self.net
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # Every process starts from rank 0's weights; gradients are averaged after each backward.
            self.forward = DistributedDataParallel(
                self.net, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        if self.device.type == "cuda":  # one crop size all run long: let cuDNN pick its fastest kernels
            torch.backends.cudnn.benchmark = True
        if config.compile:
            self.forward = torch.compile(self.forward)
        weights = torch.tensor([s.style_weight for s in config.styles], device=self.device)
        self.temporal_weights = torch.tensor([s.temporal_weight for s in config.styles], device=self.device)
        self.teacher_weights = torch.tensor([s.teacher_weight for s in config.styles], device=self.device)
        self.penalties = []  # (the penalty, each style's weight of it) for those some style pays
        for penalty in STYLE_PENALTIES:
            own = [config.penalty_weight_of(s, penalty.setting) for s in config.styles]
            if any(own):
                self.penalties.append((penalty, torch.tensor(own, device=self.device)))
        scales = [config.scales_of(s) for s in config.styles]
        factors = sorted({factor for own in scales for factor in own}, reverse=True)
        coarse = {factor: self._paintings(factor) for factor in factors}
        users = {f: torch.tensor([float(f in own) for own in scales], device=self.device) for f in factors}
        any_way = [config.any_direction_of(s) for s in config.styles]
        self.objective = PerceptualObjective.for_paintings(vgg, self._paintings(), weights, coarse, users, any_way)
        if config.compile:  # after the Gram targets: each painting has its own size, the crops one
            self.objective.vgg = torch.compile(vgg)
        self.weights = LossWeights(config.content_weight, config.style_weight, config.tv_weight)
        self.step, self.seconds, self.content_images = 0, 0.0, 0
        self.averages: dict[str, float] = {}
        self.wandb_id: str | None = None

    def _paintings(self, factor: float = 1.0) -> list[Tensor]:
        """Each style's painting at its Gram size, times ``factor`` (the coarse style scales)."""
        images = []
        for source in self.config.styles:
            try:
                side = max(32, round((source.style_size or self.config.style_size) * factor))
                image = fit_long_side(load_rgb(source.image), side)
            except (OSError, ValueError) as error:
                raise BadInput(f"cannot read style image {source.image}: {error}") from error
            images.append(to_tensor(image)[None].to(self.device))
        return images

    # --- checkpoints ---

    @property
    def checkpoint_path(self) -> str | Path:
        return checkpoints.checkpoint_path(self.config)

    def save_checkpoint(self) -> str | Path:
        """Rank 0 writes (the processes hold the same weights); every rank returns the location."""
        if not self.world.is_main:
            return self.checkpoint_path
        return checkpoints.save_checkpoint(
            self.config, step=self.step, seconds=self.seconds, averages=self.averages, model=self.net.state_dict(),
            optimizer=self.optimizer.state_dict(), wandb_id=self.wandb_id, earlier=self.earlier,
        )  # fmt: skip

    def load_checkpoint(self) -> None:
        state = checkpoints.load_checkpoint(self.config, self.device)
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.seconds = state["step"], state["seconds"]
        self.averages, self.wandb_id = state["averages"], state.get("wandb_id")
        self.earlier = state.get("earlier", self.earlier)
        self.started_from = state["config"].get("init_from") or self.started_from

    # --- the loop ---

    def losses(
        self, content: Tensor, styles: Tensor, samples: list[int], target: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The step's loss terms for this process's share of the global batch, each scaled so
        that the gradients averaged over the processes are those of the whole batch."""
        cfg = self.config
        # The temporal terms take the first ``temporal_images`` places of the global batch.
        wanted = cfg.temporal_images or cfg.batch_size
        mine = sum(position < wanted for position in self.world.positions(cfg.batch_size))
        sub = slice(0, mine)
        temporal_share = self.world.size * mine / min(wanted, cfg.batch_size)
        generators = [torch.Generator().manual_seed(cfg.seed * 1_000_003 + sample) for sample in samples[sub]]

        def stylize(x: Tensor) -> Tensor:
            return self.forward(x, styles[sub])

        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype != torch.float32):
            output = self.forward(content, styles)
            losses = self.objective.losses(output, content, styles, self.weights)
            self._per_style = losses.pop("per_image_style")
            if cfg.spot_weight:
                losses["spot"] = cfg.spot_weight * spot_penalty(output, content)
            for penalty, penalty_weights in self.penalties:
                losses[penalty.loss] = (penalty_weights[styles] * penalty.excess(output, content)).mean()
            if cfg.teacher_weight and target is not None:
                losses["teacher"] = cfg.teacher_weight * teacher_distance(output, target, self.teacher_weights[styles])
            temporal = self.temporal_weights[styles[sub]]
            zero = output.sum() * 0  # a process without temporal images still takes part in every term
            if cfg.noise_weight:
                losses["noise"] = zero
                if mine:
                    noise = noise_stability_loss(
                        stylize, content[sub], output[sub], cfg.noise_sigma, generators, temporal
                    )
                    losses["noise"] = cfg.noise_weight * temporal_share * noise
            if cfg.warp_weight:
                losses["warp"] = zero
                if mine:
                    warp = warp_consistency_loss(stylize, content[sub], output[sub], cfg.motion, generators, temporal)
                    losses["warp"] = cfg.warp_weight * temporal_share * warp
        losses["total"] = sum(losses.values())
        return losses

    def run(
        self, progress: ProgressCallback | None = None, should_stop: Callable[[], bool] | None = None,
        show_bar: bool = True,
    ) -> TrainResult:  # fmt: skip
        cfg, main = self.config, self.world.is_main
        tracker = Tracker(
            cfg.wandb and main, cfg.wandb_project, f"{cfg.backbone_name}-{cfg.styles[0].id}", cfg.to_dict(),
            cfg.wandb_dir or cfg.local_dir, self.wandb_id,
        )  # fmt: skip
        self.wandb_id = tracker.run_id
        paths = [path for folder in cfg.content for path in find_images(folder)]
        style_ids = [s.id for s in cfg.styles]
        if cfg.teacher_weight:  # only photos the teacher has painted in every style
            paths = covered_photos(cfg.teacher_dir, style_ids, paths)
            if not paths:
                raise BadInput(
                    f"no teacher renderings under {cfg.teacher_dir} for these photos and styles: render them first "
                    "(training/build_catalogue.py teach) or train without the anchor (teacher weight 0)"
                )
        self.content_images = len(paths)
        loader = self._batches(paths, style_ids)
        preview = previews.preview_batch(paths, cfg.image_size) if main else None
        bar = None
        if show_bar and main:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True)
        started, previous_seconds = time.monotonic(), self.seconds
        interrupted = threading.Event()
        previous_handlers = {}
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C, or SIGTERM (a preempted pod, torchrun stopping), asks the loop to stop at the
            # next step boundary with a checkpoint (never mid-step or mid-save).
            for number in (signal.SIGINT, signal.SIGTERM):
                previous_handlers[number] = signal.signal(number, lambda *_: interrupted.set())
        budget = cfg.max_minutes * 60 if cfg.max_minutes else None
        stopped = False
        self.net.train()
        try:
            for batch in loader:
                if self.step >= cfg.steps:
                    break
                out_of_time = bool(budget and time.monotonic() - started > budget)
                # Every process stops at the same step, whichever of them was asked to.
                reason = self.world.highest(
                    INTERRUPTED
                    if interrupted.is_set()
                    else STOPPED
                    if out_of_time or (should_stop and should_stop())
                    else 0,
                    self.device,
                )
                if reason == INTERRUPTED:
                    raise KeyboardInterrupt
                if reason == STOPPED:
                    stopped = True
                    break
                self._train_step(batch)
                self.seconds = previous_seconds + time.monotonic() - started
                if bar:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in self.averages.items() if not k.startswith("style/")})
                if not main:
                    continue
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    tracker.log({f"loss/{k}": v for k, v in self.averages.items()} | {"lr": cfg.lr}, self.step)
                grid = None
                if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                    grid = previews.sample_grid(self.net, preview, self.device, self.amp_dtype)
                    tracker.log_image("samples", grid, self.step, "input | output per style")
                    previews.save_grid(grid, cfg.local_dir / "samples", self.step)
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
            for number, handler in previous_handlers.items():
                signal.signal(number, handler)
            if bar:
                bar.close()
        checkpoint = self.save_checkpoint()
        finished = self.step >= cfg.steps and not stopped
        tracker.finish({f"final/{k}": v for k, v in self.averages.items()} | {"steps": self.step})
        library = record.result_library(self)
        self.world.leave()
        return TrainResult(
            library, self.step, finished, self.seconds, dict(self.averages), checkpoint, self.world.is_main
        )  # fmt: skip

    @property
    def crops_on_device(self) -> bool:
        if self.config.crops == "auto":
            return self.device.type == "cuda"
        return self.config.crops == "device"

    def _batches(self, paths: list[Path], style_ids: list[str]) -> Iterable[Tensor | list[Tensor]]:
        """This process's batches from the current step on: cut on the device (every photo
        decoded once), or by loader processes; both draw a sample's crop the same way."""
        cfg = self.config
        teacher_root = cfg.teacher_dir if cfg.teacher_weight else None
        if self.crops_on_device:
            crops = DeviceCrops(
                paths, cfg.image_size, self.device, seed=cfg.seed, teacher_root=teacher_root, style_ids=style_ids,
                threads=max(1, cfg.workers),
            )  # fmt: skip
            log.info("%d photos decoded onto %s (%.0f MB)", len(crops), self.device, crops.nbytes / 1e6)
            samples = iter(ShardedSampleStream(self.step, cfg.batch_size, self.world))
            return (crops.batch(list(itertools.islice(samples, self.local_batch))) for _ in itertools.count())
        crops = RandomCrops(paths, cfg.image_size, seed=cfg.seed, style_ids=style_ids, teacher_root=teacher_root)
        return DataLoader(
            crops, batch_size=self.local_batch,
            sampler=ShardedSampleStream(self.step, cfg.batch_size, self.world), num_workers=cfg.workers,
            persistent_workers=False, pin_memory=self.device.type == "cuda", prefetch_factor=4 if cfg.workers else None,
        )  # fmt: skip

    def _train_step(self, batch: Tensor | list[Tensor]) -> None:
        cfg = self.config
        target = None
        if isinstance(batch, list | tuple):  # photos and the teacher's renderings of them
            batch, target = batch
            target = target.to(self.device, non_blocking=True)
        content = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            content = content.contiguous(memory_format=torch.channels_last)
        # Round-robin over styles: every style gets the same number of images, in any order of steps.
        samples = self.world.samples(self.step, cfg.batch_size)
        styles = torch.tensor(samples, device=self.device) % len(cfg.styles)
        losses = self.losses(content, styles, samples, target)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        self.step += 1
        # Logged values are the global batch's: the mean over processes, every image's style term.
        names = list(losses)
        totals = self.world.mean(torch.stack([losses[k].detach().float() for k in names]))
        values = dict(zip(names, totals.tolist(), strict=True))
        all_styles = self.world.gather(styles).tolist()
        per_style = self.world.gather(self._per_style.float()).tolist()
        for index, value in zip(all_styles, per_style, strict=True):
            values[f"style/{cfg.styles[index].id}"] = value * cfg.style_weight * cfg.styles[index].style_weight
        for key, value in values.items():  # smoothed for display, logs and metadata
            old = self.averages.get(key)
            self.averages[key] = value if old is None else 0.9 * old + 0.1 * value


def train(config: TrainConfig, resume: bool = False, base: StyleLibrary | None = None, **run_options) -> TrainResult:
    """Train (or resume) per ``config``; the caller saves ``result.library`` where it wants."""
    trainer = Trainer(config, base=base)
    if resume and checkpoints.has_checkpoint(config):
        trainer.load_checkpoint()
        # A resumed run may be asked to go further than the interrupted one planned.
        log.info("resumed from %s at step %d", trainer.checkpoint_path, trainer.step)
    elif resume:
        log.info("no checkpoint at %s: starting from scratch", trainer.checkpoint_path)
    return trainer.run(**run_options)
