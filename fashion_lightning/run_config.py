"""The run's ``config.yaml``: Lightning's ``SaveConfigCallback``, which a resumed run writes only once it
trains."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback


class RunConfig(SaveConfigCallback):
    """A new run saves its config as Lightning's callback does, before anything else. A resumed run
    re-saves it (its last command's settings) as training starts, after every check of the resume: one
    refused (a changed schedule, validation split or batch size) leaves the run's record as it was."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self.config.get("ckpt_path"):  # the command's: Lightning reads the checkpoint after this
            super().setup(trainer, pl_module, stage)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int
    ) -> None:
        # the first step's: the model's own checks (its schedule's length) come after the callbacks'
        # on_train_start
        if not self.already_saved:
            super().setup(trainer, pl_module, "fit")
