"""Training, by job: settings (``config``), data (``data``), the loop (``loop``), resumable
checkpoints (``checkpoints``) and exporting a run as registry weights (``export``)."""

from .config import TrainConfig
from .data import RandomCrops
from .export import export
from .loop import train

__all__ = ["RandomCrops", "TrainConfig", "export", "train"]
