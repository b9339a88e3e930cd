"""optax optimizers and learning-rate schedules from `config.optimizer`."""

import ml_collections
import optax


def make_schedule(
    cfg: ml_collections.ConfigDict, *, total_steps: int, steps_per_epoch: int
) -> optax.Schedule:
    peak = cfg.learning_rate
    if cfg.schedule == "constant":
        return optax.constant_schedule(peak)
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(peak, decay_steps=total_steps)
    if cfg.schedule == "warmup_cosine":
        warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total_steps - 1)
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup_steps=warmup, decay_steps=total_steps, end_value=0.0
        )
    if cfg.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(total_steps, peak)
    raise ValueError(f"unknown schedule {cfg.schedule!r}")


def make_optimizer(
    cfg: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
    if cfg.name == "sgd":
        sgd = optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
        return _with_l2(sgd, cfg.weight_decay)
    if cfg.name == "adam":
        return _with_l2(optax.adam(schedule), cfg.weight_decay)
    if cfg.name == "adamw":
        return optax.adamw(schedule, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def _with_l2(tx: optax.GradientTransformation, weight_decay: float):
    """Classic L2 weight decay: added to the gradients before the update rule."""
    if not weight_decay:
        return tx
    return optax.chain(optax.add_decayed_weights(weight_decay), tx)
