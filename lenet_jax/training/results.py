"""What a run gives back: a `Snapshot` (the run and its state at one step), which
evaluate, predict, inspect and the plots read, and a `TrainResult`, what training returns:
the final snapshot with its final rows and how the run went."""

import dataclasses

import ml_collections
import numpy as np

from lenet_jax.data import Dataset
from lenet_jax.models import Model
from lenet_jax.training.run import Run
from lenet_jax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A run with its state at one step: what training returns and evaluate, predict and
    the plots read."""

    run: Run
    state: TrainState  # plain and unreplicated, on the host's default device
    step: int
    weights: str = "raw"  # what state.params holds: the raw parameters, or the EMA's

    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.run.config

    @property
    def dataset(self) -> Dataset:
        return self.run.dataset

    @property
    def model(self) -> Model:
        return self.run.model


@dataclasses.dataclass(frozen=True)
class TrainResult(Snapshot):
    """The final state (on the host) with the final test metrics and the last train row."""

    test: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    # Predicted classes of the test split by the final state (None on several processes).
    test_predictions: np.ndarray | None = None
    stop_reason: str = ""  # why the run ended before config.num_epochs (early stopping)
    test_ema: dict = dataclasses.field(default_factory=dict)  # the EMA's final test metrics
    resumed_from: int = 0  # the checkpoint's step this process started from (0: fresh)
    steps_trained: int = 0  # the train steps this process ran (the rest were restored)
