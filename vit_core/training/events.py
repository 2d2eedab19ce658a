"""What the training loop reports: Step, Eval, Snapshot and Done. UI-free.

All but Done are floats and small numpy arrays, so a worker process can send them to the server
as they are (``vit_core.training.runs``); Done carries the trained model and stays where it ran.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.nn as nn


@dataclass
class Step:
    step: int
    epoch: float  # passes over the fixed training set; 0 with fresh data every step
    loss: float
    train_acc: float
    lr: float
    images_per_s: float
    elapsed_s: float
    eta_s: float | None


@dataclass
class Eval:
    step: int
    val_loss: float
    val_acc: float


@dataclass
class Snapshot:
    step: int
    pos_similarity: np.ndarray  # (N, gh, gw) float32: cosine similarity of patch positions
    rollout: np.ndarray  # (gh, gw) float32: last-layer attention rollout on a fixed val image
    image: np.ndarray  # (H, W, 3) uint8, that val image


@dataclass
class Done:
    model: nn.Module  # the trained model, in eval mode
    val_acc: float
    steps: int
    seconds: float
    reason: str  # "finished", "time budget", "stopped" or "diverged: <why>"


Event = Step | Eval | Snapshot | Done


__all__ = ["Done", "Eval", "Event", "Snapshot", "Step"]
