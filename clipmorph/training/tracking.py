"""Experiment tracking with Weights & Biases: online with an API key, offline (local files,
``wandb sync`` later) without one, or off. Training code only ever talks to ``Tracker``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipmorph.environment import wandb_mode


class Tracker:
    """A W&B run, or nothing at all when ``enabled`` is false (same calls either way)."""

    def __init__(
        self, enabled: bool, project: str, name: str, config: dict, directory: Path, resume_id: str | None = None
    ) -> None:
        self.run = None
        self.mode = "disabled"
        if not enabled:
            return
        import wandb

        directory.mkdir(parents=True, exist_ok=True)
        self.mode = wandb_mode()
        self.run = wandb.init(
            project=project,
            name=name,
            config=config,
            dir=str(directory),
            mode=self.mode,
            id=resume_id,
            resume="allow" if resume_id else None,
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run else None

    @property
    def run_dir(self) -> Path | None:
        return Path(self.run.dir).parent if self.run else None

    def log(self, values: dict, step: int) -> None:
        if self.run:
            self.run.log(values, step=step)

    def log_image(self, key: str, image: np.ndarray, step: int, caption: str = "") -> None:
        if self.run:
            import wandb

            self.run.log({key: wandb.Image(image, caption=caption)}, step=step)

    def finish(self, summary: dict | None = None) -> None:
        if self.run:
            self.run.summary.update(summary or {})
            self.run.finish()
            self.run = None
