"""optax optimizers and learning-rate schedules by name: the tables `config.validate` reads."""

from collections.abc import Callable

import ml_collections
import optax

Config = ml_collections.ConfigDict  # config.optimizer


def _constant(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    return optax.constant_schedule(cfg.learning_rate)


def _cosine(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    return optax.cosine_decay_schedule(cfg.learning_rate, decay_steps=total_steps)


def _warmup_cosine(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total_steps - 1)
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, warmup_steps=warmup, decay_steps=total_steps, end_value=0.0
    )


def _onecycle(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    return optax.cosine_onecycle_schedule(total_steps, cfg.learning_rate)


# name -> (config.optimizer, total steps, steps per epoch) -> schedule of the peak rate.
SCHEDULES: dict[str, Callable[[Config, int, int], optax.Schedule]] = {
    "constant": _constant,
    "cosine": _cosine,
    "warmup_cosine": _warmup_cosine,
    "onecycle": _onecycle,
}


def _with_l2(tx: optax.GradientTransformation, weight_decay: float):
    """Classic L2 weight decay: added to the gradients before the update rule."""
    if not weight_decay:
        return tx
    return optax.chain(optax.add_decayed_weights(weight_decay), tx)


def _sgd(cfg: Config, schedule: optax.Schedule) -> optax.GradientTransformation:
    sgd = optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
    return _with_l2(sgd, cfg.weight_decay)


def _adam(cfg: Config, schedule: optax.Schedule) -> optax.GradientTransformation:
    return _with_l2(optax.adam(schedule), cfg.weight_decay)


def _adamw(cfg: Config, schedule: optax.Schedule) -> optax.GradientTransformation:
    return optax.adamw(schedule, weight_decay=cfg.weight_decay)  # decoupled decay


# name -> (config.optimizer, schedule) -> transformation.
OPTIMIZERS: dict[str, Callable[[Config, optax.Schedule], optax.GradientTransformation]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
}


def make_schedule(cfg: Config, *, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    return SCHEDULES[cfg.schedule](cfg, total_steps, steps_per_epoch)


def make_optimizer(cfg: Config, schedule: optax.Schedule) -> optax.GradientTransformation:
    return OPTIMIZERS[cfg.name](cfg, schedule)
