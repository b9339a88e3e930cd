"""optax optimizers and learning-rate schedules by name (the tables `config_checks` reads),
and the transformation a run trains with: groups and frozen parameters, clipping and
gradient accumulation around the named optimizer."""

import functools
from collections.abc import Callable

import jax
import ml_collections
import optax

from lenet_jax.training import param_groups

Config = ml_collections.ConfigDict  # config.optimizer


def _constant(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    return optax.constant_schedule(cfg.learning_rate)


def _cosine(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    return optax.cosine_decay_schedule(cfg.learning_rate, decay_steps=total_steps)


def _warmup_steps(cfg: Config, total_steps: int, steps_per_epoch: int) -> int:
    """`warmup_epochs` in steps, leaving at least one step after the warmup."""
    return min(int(cfg.warmup_epochs * steps_per_epoch), total_steps - 1)


def _warmup_cosine(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    peak = cfg.learning_rate
    return optax.warmup_cosine_decay_schedule(
        cfg.warmup_from * peak,
        peak,
        warmup_steps=_warmup_steps(cfg, total_steps, steps_per_epoch),
        decay_steps=total_steps,
        end_value=cfg.decay_to * peak,
    )


def _warmup_linear(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    """Linear up from `warmup_from` x the peak to the peak over `warmup_epochs`, then linear
    down to `decay_to` x the peak (airbench's)."""
    peak = cfg.learning_rate
    warmup = max(1, _warmup_steps(cfg, total_steps, steps_per_epoch))
    return optax.join_schedules(
        [
            optax.linear_schedule(cfg.warmup_from * peak, peak, warmup),
            optax.linear_schedule(peak, cfg.decay_to * peak, max(1, total_steps - warmup)),
        ],
        [warmup],
    )


def _onecycle(cfg: Config, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    return optax.cosine_onecycle_schedule(total_steps, cfg.learning_rate)


# name -> (config.optimizer, total steps, steps per epoch) -> schedule of the peak rate.
SCHEDULES: dict[str, Callable[[Config, int, int], optax.Schedule]] = {
    "constant": _constant,
    "cosine": _cosine,
    "warmup_cosine": _warmup_cosine,
    "warmup_linear": _warmup_linear,
    "onecycle": _onecycle,
}


def _with_l2(tx: optax.GradientTransformation, weight_decay: float):
    """Classic L2 weight decay: added to the gradients before the update rule (always,
    where the decay is an array: a sweep's, read from the state)."""
    if isinstance(weight_decay, int | float) and not weight_decay:
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


def make_optimizer(
    cfg: Config, schedule: optax.Schedule, *, freeze: str = "", accum_steps: int = 1
) -> optax.GradientTransformation:
    """The named optimizer, per parameter group; frozen parameters get zero updates and no
    optimizer state (`optax.multi_transform`); gradients clipped to `cfg.clip_norm` (frozen
    ones left out of the norm) and averaged over `accum_steps` batches (`optax.MultiSteps`)
    first. Without groups, freezing or clipping it is the named optimizer alone, so its
    state (and a checkpoint's layout) is what it always was."""
    groups = tuple(cfg.param_groups)
    tx = OPTIMIZERS[cfg.name](cfg, schedule)
    labels = functools.partial(param_groups.labels, freeze=freeze, groups=groups)
    if groups or freeze:
        txs = {param_groups.DEFAULT: tx, param_groups.FROZEN: optax.set_to_zero()}
        for i, group in enumerate(groups):
            txs[param_groups.group_label(i)] = _group_optimizer(cfg, schedule, group)
        tx = optax.multi_transform(txs, labels)
    if cfg.clip_norm:
        clip = [optax.clip_by_global_norm(cfg.clip_norm)]
        if freeze:  # frozen gradients are dropped before the norm, not counted in it
            frozen = functools.partial(_is_frozen, labels)
            clip.insert(0, optax.masked(optax.set_to_zero(), frozen))
        tx = optax.chain(*clip, tx)
    if accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accum_steps).gradient_transformation()
    return tx


def _is_frozen(labels: Callable, params):
    return jax.tree.map(lambda label: label == param_groups.FROZEN, labels(params))


def _group_optimizer(cfg: Config, schedule: optax.Schedule, group) -> optax.GradientTransformation:
    """The named optimizer with a group's learning-rate scale and weight-decay switch."""
    settings = cfg.copy_and_resolve_references()
    decay = group.get("weight_decay", True)
    with settings.unlocked():
        if decay is False:
            settings.weight_decay = 0.0
        elif decay is not True:  # the group's own coefficient
            settings.weight_decay = float(decay)
    scale = float(group.get("lr_scale", 1.0))
    scaled = schedule if scale == 1.0 else (lambda step: scale * schedule(step))
    return OPTIMIZERS[cfg.name](settings, scaled)
