"""The notes' pictures: in TensorBoard during a run (PictureLogger), as PNG files (fashion-lightning-viz)."""

from fashion_lightning.viz.callback import PictureLogger

__all__ = ["PictureLogger"]
