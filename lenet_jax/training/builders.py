"""The pieces `run.build_run` assembles, each checked before any work is done: the model
behind its contract with its loss, the device strategy with its compile options, and the
optimizer with its schedule (counting updates) and parameter groups."""

from lenet_jax.data import Dataset
from lenet_jax.models import Model, build_model
from lenet_jax.training import batches, compile_options, distributed, losses, parallel, param_groups
from lenet_jax.training.optim import make_optimizer, make_schedule
from lenet_jax.training.sweep_optim import swept_optimizer


def model_and_loss(config, dataset: Dataset, strategy_name: str) -> tuple[Model, losses.Loss]:
    """The model behind its contract and the loss, both checked on abstract values."""
    model = build_model(
        config.model,
        num_classes=dataset.num_classes,
        dtype=config.get("compute_dtype", "float32"),
        batch_axis=parallel.AXIS if strategy_name == "pmap" else None,
        passed=tuple(config.model_fields_passed),
    )
    model.check(dataset.image_shape, dataset.num_classes)
    loss = losses.resolve(config)
    losses.check(loss, model, dataset.image_shape, dataset.num_classes)
    return model, loss


def strategy(config, model: Model, name: str, *, check_batches: bool) -> parallel.Strategy:
    """The device strategy, compiling with the config's CPU options; the batch sizes
    checked against its devices where it trains (`check_batches`)."""
    strategy = parallel.create(
        name,
        model.axis_names,
        compiler_options=compile_options.for_backend(
            config.cpu_compiler_options, batch_norm=model.has_batch_stats
        ),
    )
    if strategy.name == "pmap" and model.has_batch_stats and not model.axis_names:
        distributed.warn(
            f"warning: model {model.name!r} keeps batch statistics but averages them over no "
            "axis: under pmap each device normalises its own slice of the batch, so the "
            "numbers differ from single and sharded runs; give its BatchNorm an axis_name "
            "(pmap's device axis then takes that name)"
        )
    if check_batches:
        strategy.check_batch(config.batch_size, "batch_size")
        strategy.check_batch(batches.eval_batch_size(config), "eval_batch_size")
    return strategy


def optimizer(config, model: Model, dataset: Dataset, steps_per_epoch: int, sweep=None):
    """(schedule, transformation): the schedule counts updates, not batches; the freeze and
    parameter-group regexes are checked against the model's parameter paths. A `sweep`'s
    fields are read from the optimizer's state (`sweep_optim.swept_optimizer`)."""
    accum = config.grad_accum_steps

    def schedule_of(optimizer_config):
        return make_schedule(
            optimizer_config,
            total_steps=max(1, steps_per_epoch * config.num_epochs // accum),
            steps_per_epoch=max(1, steps_per_epoch // accum),
        )

    def tx_of(optimizer_config, schedule):
        return make_optimizer(optimizer_config, schedule, freeze=config.freeze, accum_steps=accum)

    schedule = schedule_of(config.optimizer)
    if sweep is None:
        tx = tx_of(config.optimizer, schedule)
    else:
        start = {name: values[0] for name, values in sweep.hparams().items()}
        tx = swept_optimizer(config.optimizer, start, schedule_of, tx_of)
    param_groups.check_matches(
        model.abstract_params(dataset.image_shape),
        freeze=config.freeze,
        groups=tuple(config.optimizer.param_groups),
    )
    return schedule, tx
