"""The run builder: everything fixed for the length of a run, built in one place.

Training, `evaluate`/`predict` (through `report.inference`) and the benchmark all call
`build_run`, so the data, the model behind its contract, the device strategy, the
optimizer and its schedule, the keys, the steps per epoch and the state's shapes cannot
drift apart between them. Nothing here touches a workdir: a bad config or a model that
breaks the contract fails before any file is written.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lenet_jax.data import Dataset
from lenet_jax.data.streaming import is_streamed
from lenet_jax.errors import UserError
from lenet_jax.models import Model
from lenet_jax.training import (
    augment,
    builders,
    config_checks,
    eval_steps,
    losses,
    parallel,
    replicas,
    steps,
    sweeps,
    warm_start,
)
from lenet_jax.training.compile_options import run_once
from lenet_jax.training.keys import epoch_order, make_keys
from lenet_jax.training.run_data import alternating_flips_start, load_data
from lenet_jax.training.state import TrainState, create_train_state, state_from


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything fixed for the length of a run."""

    config: ml_collections.ConfigDict
    dataset: Dataset
    model: Model
    loss: losses.Loss
    strategy: parallel.Strategy
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    keys: dict[str, jax.Array]
    steps_per_epoch: int
    sweep: sweeps.Sweep | None = None  # config.sweep's members, where it has one

    @property
    def compute_dtype(self):
        return jnp.dtype(self.config.get("compute_dtype", "float32"))

    @property
    def num_replicas(self) -> int:
        """The population's size: a sweep's members, else config.num_replicas."""
        return self.sweep.size if self.sweep else self.config.num_replicas

    @property
    def own_data_order(self) -> bool:
        return self.num_replicas > 1 and self.config.replica_data_order

    @property
    def replica_loop(self) -> str:
        return replicas.resolve_loop(self.config.replica_loop)

    @property
    def has_ema(self) -> bool:
        return self.config.ema_decay > 0

    def order(self, epoch: int) -> np.ndarray:
        """The examples' order in `epoch`: (examples,), or (N, examples) for a population
        with its own data orders."""
        return epoch_order(self.keys["data"], epoch, len(self.dataset.train_labels))

    def _create_state(self, key, images) -> TrainState:
        create = lambda k: create_train_state(self.model, self.tx, k, images, ema=self.has_ema)  # noqa: E731
        return self._with_member_values(replicas.vectorize_init(create, self.num_replicas)(key))

    def _with_member_values(self, state: TrainState) -> TrainState:
        if self.sweep is None:
            return state
        return state.replace(opt_state=sweeps.with_member_values(state.opt_state, self.sweep))

    def init_images(self) -> np.ndarray:
        """What the model's init sees: the first `config.init_images` training images,
        normalised as the train step normalises them, or one blank image."""
        count = min(self.config.init_images, len(self.dataset.train_labels))
        if not count:
            return np.zeros((1, *self.dataset.image_shape), np.float32)
        images = np.asarray(self.dataset.train_images[:count])
        return np.asarray(steps.normalize(images, self.dataset.mean, self.dataset.std))

    def init_state(self) -> TrainState:
        """The fresh state from the init key, on the host's default device.

        Compiled, not run op by op: eagerly, each of init's many small ops is dispatched
        (and compiled) on its own, which costs seconds; compiled, it is one program that
        the persistent compilation cache keeps.
        """
        return run_once(
            self._create_state,
            self.keys["init"],
            self.init_images(),
            options=self.strategy.compiler_options,
        )

    def state_from(self, params, batch_stats) -> TrainState:
        """Step 0 at given parameters (a warm start): fresh optimizer state and EMA."""
        fresh = lambda p, b: state_from(p, b, self.tx, ema=self.has_ema)  # noqa: E731
        if self.num_replicas > 1:
            fresh = jax.vmap(fresh, out_axes=replicas.STATE_AXES)
        create = lambda p, b: self._with_member_values(fresh(p, b))  # noqa: E731
        return run_once(create, params, batch_stats, options=self.strategy.compiler_options)

    def abstract_state(self, sharding=None) -> TrainState:
        """The state's shapes (nothing computed), placed as `sharding` says (default: the
        strategy's), for orbax to restore into."""
        sharding = sharding or self.strategy.state_sharding()
        images = jax.ShapeDtypeStruct((1, *self.dataset.image_shape), jnp.float32)
        shapes = jax.eval_shape(self._create_state, self.keys["init"], images)
        return jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes
        )

    def train_step(self):
        """The pure train step of this run (uncompiled), over all its replicas."""
        step = steps.make_train_step(
            self.model,
            self.tx,
            mean=self.dataset.mean,
            std=self.dataset.std,
            loss=self.loss,
            augment=augment.make_augment(
                **self.config.augment,
                axis_name=self.strategy.axis_name,
                swept=self.sweep.fields if self.sweep else (),
            ),
            compute_dtype=self.compute_dtype,
            axis_name=self.strategy.axis_name,
            ema=self.ema_rule(),
            accum_steps=self.config.grad_accum_steps,
            mirror_odd_epochs_of=self.steps_per_epoch
            if self.config.augment.flip_alternating
            else 0,
        )
        return replicas.vectorize_train_step(
            step, self.num_replicas, own_data=self.own_data_order, loop=self.replica_loop
        )

    def eval_step(self):
        """The eval step, for the strategy's `compile_eval`."""
        return eval_steps.make_eval_step(
            self.model,
            **self._normalization(),
            axis_name=self.strategy.axis_name,
            num_replicas=self.num_replicas,
            replica_loop=self.replica_loop,
            loss=self.loss,
        )

    def predict_step(self):
        """Eval-mode logits for one device (`jax.jit` it), whatever the strategy: (batch,
        classes), or (N, batch, classes) for a population."""
        predict = eval_steps.make_predict_step(self.model, **self._normalization())
        return replicas.vectorize_predict(predict, self.num_replicas, self.replica_loop)

    def score_step(self):
        """Eval-mode `(state, images, labels, mask) -> (logits, the loss's per-example
        terms)` for one device, as `predict_step` (what `evaluate` scores a split with)."""
        score = eval_steps.make_score_step(self.model, loss=self.loss, **self._normalization())
        return replicas.vectorize_predict(score, self.num_replicas, self.replica_loop)

    def ema_rule(self) -> steps.EmaRule:
        """The config's EMA: its decay, cadence, ramp over the run's updates, lookahead."""
        config = self.config
        return steps.EmaRule(
            decay=config.ema_decay,
            every=config.ema_every_steps,
            ramp=config.ema_ramp,
            total_updates=max(
                1, self.steps_per_epoch * config.num_epochs // config.grad_accum_steps
            ),
            lookahead=config.lookahead,
        )

    def learning_rate(self, step: int) -> float:
        """The peak schedule's rate at `step` (with accumulation, the schedule counts updates)."""
        return float(self.schedule(step // self.config.grad_accum_steps))

    def _normalization(self) -> dict:
        """What evaluation and prediction share: normalisation and test-time augmentation."""
        return {
            "mean": self.dataset.mean,
            "std": self.dataset.std,
            "compute_dtype": self.compute_dtype,
            "tta": self.config.eval_tta,
        }


def build_run(
    config: ml_collections.ConfigDict,
    *,
    dataset: Dataset | None = None,
    parallelism: str | None = None,
) -> Run:
    """Validates `config` and builds its run; `dataset` and `parallelism` override the
    config's (inference reads the whole test split on one device, and its train split is
    not prepared for alternating flips: it trains on nothing)."""
    config_checks.validate(config)
    if dataset is None:  # the data to train on
        dataset = load_data(config)
        if config.augment.flip_alternating:  # validate() checked that flip is on
            dataset = alternating_flips_start(dataset, config.seed)
    strategy_name = parallel.resolve(parallelism or config.parallelism)
    model, loss = builders.model_and_loss(config, dataset, strategy_name)
    if config.replica_data_order and is_streamed(dataset.train_images):
        raise UserError(
            "config.replica_data_order=True gathers a batch per replica, but the train split "
            "is streamed (larger than config.max_in_memory_mb); use the shared data order"
        )
    strategy = builders.strategy(config, model, strategy_name, check_batches=parallelism is None)
    steps_per_epoch = max(1, len(dataset.train_labels) // config.batch_size)
    sweep = sweeps.parse(config)
    schedule, tx = builders.optimizer(config, model, dataset, steps_per_epoch, sweep)
    if config.init_from:
        warm_start.source_checkpoint(config.init_from)  # a bad path fails before any write
    members = sweep.size if sweep else config.num_replicas
    keys = make_keys(config.seed, members, own_data=config.replica_data_order)
    return Run(
        config=config,
        dataset=dataset,
        model=model,
        loss=loss,
        strategy=strategy,
        tx=tx,
        schedule=schedule,
        keys=keys,
        steps_per_epoch=steps_per_epoch,
        sweep=sweep,
    )
