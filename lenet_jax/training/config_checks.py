"""`validate(config)`: every field that does not depend on the data, checked before anything
runs, each bad value one `UserError` naming the field and what is allowed.

The allowed values of a choice come from the registries that define them (`OPTIMIZERS`,
`PARALLELISM`, `EPOCH_LOOPS`, ...), so this module sits above them, beside the run builder
that calls it, and `config.py` below everything imports nothing from the package.
"""

import math
import re

import ml_collections

from lenet_jax.config import COMPUTE_DTYPES
from lenet_jax.errors import UserError
from lenet_jax.ops.conv import CONV_IMPLS
from lenet_jax.training import metrics, pbt, sweeps
from lenet_jax.training.augment import TTA
from lenet_jax.training.epochs import EPOCH_LOOPS
from lenet_jax.training.optim import OPTIMIZERS, SCHEDULES
from lenet_jax.training.parallel import PARALLELISM
from lenet_jax.training.param_groups import check_groups
from lenet_jax.training.replicas import REPLICA_LOOPS
from lenet_jax.training.steps import EMA_RAMPS


def _require(ok: bool, field: str, allowed: str, value) -> None:
    if not ok:
        raise UserError(f"config.{field}={value!r} is not allowed; expected {allowed}")


def _choices() -> dict[str, tuple]:
    """The allowed values of each choice field, read from the registries that define them."""
    return {
        "optimizer.name": tuple(OPTIMIZERS),
        "optimizer.schedule": tuple(SCHEDULES),
        "parallelism": PARALLELISM,
        "epoch_loop": EPOCH_LOOPS,
        "compute_dtype": COMPUTE_DTYPES,
        "model.conv_impl": (None, *CONV_IMPLS),
        "replica_loop": REPLICA_LOOPS,
        "eval_tta": TTA,
        "ema_ramp": EMA_RAMPS,
        "best_metric": tuple(metrics.names()),
        "sweep_mode": sweeps.SWEEP_MODES,
        "sweep_strategy": pbt.STRATEGIES,
    }


_POSITIVE = (
    "batch_size",
    "num_epochs",
    "checkpoint_every_epochs",
    "eval_every_epochs",
    "ema_every_steps",
    "keep_checkpoints",
    "log_every_steps",
    "optimizer.learning_rate",
    "max_in_memory_mb",
    "num_replicas",
    "grad_accum_steps",
)
_NON_NEGATIVE = {  # the field: what its 0 means
    "eval_batch_size": "auto",  # `batches.eval_batch_size`
    "augment.crop_padding": "off",
    "augment.cutout_size": "off",
    "optimizer.clip_norm": "off",
    "max_train_seconds": "off",
    "profile_steps": "off",
    "init_images": "off",
}
_NON_NEGATIVE_NUMBERS = (
    "optimizer.weight_decay",
    "optimizer.warmup_epochs",
)
_FRACTIONS = (  # in [0, 1)
    "model.dropout_rate",
    "optimizer.momentum",
    "label_smoothing",
    "ema_decay",
    "optimizer.warmup_from",
    "optimizer.decay_to",
)
_REGEXES = ("init_exclude", "freeze")


def _field(config: ml_collections.ConfigDict, path: str):
    for part in path.split("."):
        config = config[part]
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks the fields that do not depend on the data; one error naming the field."""
    _check_tables(config)
    check_number_ranges(config)
    _check_single_fields(config)
    _check_pairs(config)
    check_groups(config.optimizer.param_groups)
    _check_sweep(config)


def _check_sweep(config: ml_collections.ConfigDict) -> None:
    """Each member of a sweep passes the checks the same values pass as overrides, and
    population-based training has what it needs."""
    sweep = sweeps.parse(config)
    pbt.check(config, sweep)
    for member in range(0, sweep.size, sweep.seeds) if sweep else ():
        values = sweep.values(member)
        try:
            validate(sweeps.filled(config, values))
        except UserError as e:
            given = ", ".join(f"{field}={value!r}" for field, value in values.items())
            raise UserError(f"config.sweep: the member with {given}: {e}") from e


def _check_tables(config: ml_collections.ConfigDict) -> None:
    """The choices and the numbers' signs, from the tables above."""
    for path, allowed in _choices().items():
        _require(_field(config, path) in allowed, path, list(allowed), _field(config, path))
    for path in _POSITIVE:
        _require(_field(config, path) > 0, path, "a positive number", _field(config, path))
    for path, zero in _NON_NEGATIVE.items():
        value = _field(config, path)
        _require(value >= 0, path, f"0 ({zero}) or a positive integer", value)
    for path in _NON_NEGATIVE_NUMBERS:
        _require(_field(config, path) >= 0, path, "a number >= 0", _field(config, path))
    for path in _FRACTIONS:
        value = _field(config, path)
        _require(value is None or 0 <= value < 1, path, "a number in [0, 1)", value)


def _check_single_fields(config: ml_collections.ConfigDict) -> None:
    """The fields with a rule of their own: names, regexes, patience, classes, callbacks."""
    passed = tuple(config.model_fields_passed)
    _require(
        all(isinstance(f, str) and f in config.model and f != "name" for f in passed),
        "model_fields_passed",
        f"names of config.model fields ({sorted(set(config.model) - {'name'})})",
        passed,
    )
    for path in _REGEXES:
        check_regex(config[path], path)
    _require(
        isinstance(config.aux_loss_weight, int | float) and config.aux_loss_weight >= 0,
        "aux_loss_weight",
        "a number >= 0 (0 reports the model's auxiliary losses without minimising them)",
        config.aux_loss_weight,
    )
    patience = config.early_stopping_patience
    _require(
        patience is None or patience >= 1,
        "early_stopping_patience",
        "None (never stop early) or a positive number of epochs",
        patience,
    )
    classes = tuple(config.classes)
    _require(
        all(isinstance(c, int) and c >= 0 for c in classes) and len(set(classes)) == len(classes),
        "classes",
        "() for all, or distinct class indices such as (0, 1, 2)",
        classes,
    )
    names = tuple(config.callbacks)
    _require(
        all(isinstance(n, str) and _is_attribute_path(n) for n in names),
        "callbacks",
        "() or 'package.module:Class' names, e.g. ('my_hooks:GradNorm',)",
        names,
    )


def _check_pairs(config: ml_collections.ConfigDict) -> None:
    """Fields that only make sense with another one set."""
    _require(
        config.init_exclude == "" or config.init_from != "",
        "init_exclude",
        "'' unless config.init_from names the run to start from",
        config.init_exclude,
    )
    _require(
        not config.lookahead or config.ema_decay > 0,
        "lookahead",
        "False unless config.ema_decay > 0 (the average the parameters restart from)",
        config.lookahead,
    )
    _require(
        config.augment.flip or not config.augment.flip_alternating,
        "augment.flip_alternating",
        "False unless config.augment.flip=True (it says how the flips are drawn)",
        config.augment.flip_alternating,
    )


def _is_attribute_path(name: str) -> bool:
    module, colon, attr = name.partition(":")
    return bool(colon) and all(part.isidentifier() for part in (*module.split("."), attr))


INT_LIMIT = 2**31 - 1  # what an int32 (the step counter, a seed's key) holds
FLOAT_LIMIT = 3.4e38  # what a float32 holds


def check_number_ranges(config: ml_collections.ConfigDict, prefix: str = "") -> None:
    """Every number in the config, model fields included: an integer within int32, a float
    finite and within float32 (a larger one overflows on the device)."""
    for key, value in config.items():
        path = prefix + key
        if isinstance(value, ml_collections.ConfigDict):
            check_number_ranges(value, f"{path}.")
        elif isinstance(value, int) and not isinstance(value, bool):
            _require(
                abs(value) <= INT_LIMIT, path, f"an integer within +-{INT_LIMIT:,} (int32)", value
            )
        elif isinstance(value, float):
            _require(
                math.isfinite(value) and abs(value) <= FLOAT_LIMIT,
                path,
                f"a finite number within +-{FLOAT_LIMIT:g} (float32)",
                value,
            )


def check_regex(pattern: str, field: str) -> None:
    """A one-line error naming `field` when `pattern` is not a regular expression."""
    try:
        re.compile(pattern)
    except (re.error, TypeError) as e:
        raise UserError(
            f"config.{field}={pattern!r} is not a regular expression ({e}); expected a "
            "Python regex searched in parameter paths such as 'Dense_2/kernel'"
        ) from None
