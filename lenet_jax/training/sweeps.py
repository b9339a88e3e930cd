"""A hyperparameter sweep in one compiled step (`config.sweep`): the members of a population
differ in their values of a few fields, not only in their seeds.

`config.sweep` is a JSON object of field -> the values to try, e.g.
`{"optimizer.learning_rate": [1e-3, 3e-3], "optimizer.weight_decay": [0, 5e-4]}`, taken as a
grid (every combination) or zipped (the i-th values together; `config.sweep_mode`). Each
combination is trained by `config.num_replicas` members (its seeds): member m is
combination m // num_replicas with seed index m % num_replicas, and its keys are the
population's, folded with m. The swept values live in the optimizer's state
(`sweep_optim.SweptState`), one per member, so the compiled step reads them as data: one
compile serves the whole sweep.

What can vary is one table, `SWEEPABLE`. Anything else is refused in one line: a structural
field (a width, the model, the batch size, the number of epochs) fixes the shapes or the
program the step is compiled for.
"""

import dataclasses
import itertools
import json
import os

import jax.numpy as jnp
import ml_collections
import numpy as np

from lenet_jax import files
from lenet_jax.errors import UserError
from lenet_jax.training import metrics
from lenet_jax.training.augment import CUTOUT_SIZE
from lenet_jax.training.sweep_optim import state_name

# field -> what it is to the step (each enters the optimizer's, the loss's or the
# augmentation's arithmetic only, never a shape).
SWEEPABLE = {
    "optimizer.learning_rate": "the schedule's peak rate",
    "optimizer.weight_decay": "the optimizer's weight decay",
    "label_smoothing": "the built-in loss's label smoothing",
    CUTOUT_SIZE: "the cutout square's side (0: none)",
}
# The swept fields whose values must stay below 1, and the most population-based training
# perturbs them to.
FRACTIONS = {"label_smoothing": 0.99}
INTEGERS = {CUTOUT_SIZE}  # whose values are whole numbers
SWEEP_MODES = ("grid", "zip")  # what config.sweep_mode accepts


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The swept fields, their combinations in member order, and the seeds of each."""

    fields: tuple[str, ...]
    combinations: tuple[tuple[float, ...], ...]
    seeds: int

    @property
    def size(self) -> int:
        """The number of members: combinations times seeds."""
        return len(self.combinations) * self.seeds

    def values(self, member: int) -> dict[str, float]:
        """Member `member`'s value of each swept field."""
        return dict(zip(self.fields, self.combinations[member // self.seeds], strict=True))

    def members(self) -> list[dict[str, float]]:
        """Every member's values and seed index, in member order (the rows' `members`)."""
        return [{**self.values(m), "seed": m % self.seeds} for m in range(self.size)]

    def hparams(self) -> dict[str, np.ndarray]:
        """Each swept field's values over the members, by its `state_name`: (members,)
        float32, as the optimizer's state holds them."""
        table = [self.values(m) for m in range(self.size)]
        return {
            state_name(field): np.asarray([row[field] for row in table], np.float32)
            for field in self.fields
        }


def parse(config: ml_collections.ConfigDict) -> Sweep | None:
    """`config.sweep` as a `Sweep` (None where it is empty); one line naming config.sweep
    where it is not one. `config_checks` checks each member's values as overrides."""
    if not config.sweep:
        return None
    spec = _spec(config.sweep)
    fields = tuple(spec)
    if "label_smoothing" in spec and ":" in config.loss:
        raise UserError(
            f"config.sweep: 'label_smoothing' is read by the built-in losses only, and "
            f"config.loss={config.loss!r} is a fork's: its fields cannot vary inside one step"
        )
    if config.sweep_mode == "grid":
        combinations = tuple(itertools.product(*spec.values()))
    else:
        lengths = {field: len(values) for field, values in spec.items()}
        if len(set(lengths.values())) > 1:
            raise UserError(
                f"config.sweep_mode='zip' takes the i-th value of every field together, but "
                f"config.sweep's fields have different numbers of values: {lengths}"
            )
        combinations = tuple(zip(*spec.values(), strict=True))
    return Sweep(fields=fields, combinations=combinations, seeds=config.num_replicas)


def _spec(text: str) -> dict[str, list[float]]:
    allowed = f"a JSON object of field -> list of numbers, the fields from {sorted(SWEEPABLE)}"
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"config.sweep={text!r} is not JSON ({e.msg}); expected {allowed}") from e
    if not isinstance(spec, dict) or not spec:
        raise UserError(f"config.sweep={text!r}; expected {allowed}")
    for field, values in spec.items():
        if field not in SWEEPABLE:
            raise UserError(
                f"config.sweep: {field!r} cannot vary inside one compiled step (only values "
                f"the step reads as data can: a structural field fixes its shapes or program); "
                f"sweepable: {sorted(SWEEPABLE)}"
            )
        numbers = isinstance(values, list) and values
        if not numbers or not all(_is_number(v) for v in values):
            raise UserError(f"config.sweep: {field!r} has {values!r}; expected {allowed}")
        if field in INTEGERS and not all(isinstance(v, int) for v in values):
            raise UserError(f"config.sweep: {field!r} has {values!r}; expected whole numbers")
    return spec


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def filled(
    config: ml_collections.ConfigDict, values: dict[str, float]
) -> ml_collections.ConfigDict:
    """`config` with `values` set and no sweep: the recipe one member trains."""
    single = config.copy_and_resolve_references()
    with single.unlocked():
        single.sweep, single.sweep_strategy = "", "independent"
        for field, value in values.items():
            section, name = field.rsplit(".", 1) if "." in field else ("", field)
            target = single[section] if section else single
            target[name] = typed(field, value)
    return single


def current_members(sweep: Sweep, opt_state) -> list[dict]:
    """Every member's values as its optimizer state holds them now (population-based
    training changes them) and its seed index, in member order: the rows' `members`.
    `opt_state` is a host state's."""
    hparams = {name: np.atleast_1d(np.asarray(v)) for name, v in opt_state.hparams.items()}
    return [
        {
            **{field: typed(field, hparams[state_name(field)][m]) for field in sweep.fields},
            "seed": m % sweep.seeds,
        }
        for m in range(sweep.size)
    ]


def typed(field: str, value) -> float | int:
    """A swept value as the config holds it: a whole number for an integer field (rounded),
    else as float32 holds it, written as its shortest decimal (0.003, not
    0.003000000026077032)."""
    if field in INTEGERS:
        return int(round(float(value)))
    return float(str(np.float32(value)))


def with_member_values(opt_state, sweep: Sweep):
    """A population's optimizer state with member m holding member m's values (a sweep of
    one member is not a population: its values are scalars)."""
    hparams = {
        name: jnp.asarray(values if sweep.size > 1 else values[0])
        for name, values in sweep.hparams().items()
    }
    return opt_state._replace(hparams=hparams)


def rate_extras(members: list[dict] | None, rate: float, peak: float) -> dict:
    """A sweep's train-row addition: each member's learning rate when the peak is swept
    (`rate` is the config's at this step; every schedule is linear in its peak)."""
    field = "optimizer.learning_rate"
    if not members or field not in members[0]:
        return {}
    rates = [rate * member[field] / peak for member in members]
    return {"learning_rate" + metrics.PER_REPLICA: rates}


def member_label(member: dict) -> str:
    """A member of the rows' `members` as one short label: `learning_rate=0.003 seed 1`."""
    values = [
        f"{field.rpartition('.')[2]}={value:g}"
        for field, value in member.items()
        if field != "seed"
    ]
    return " ".join([*values, f"seed {member['seed']}"])


def curve_labels(sweep: Sweep | None, strategy: str) -> list[str] | None:
    """TensorBoard's name for each member's curves: its values, or under population-based
    training, which changes them, its index (the values are in each row's `members`)."""
    if sweep is None:
        return None
    if strategy == "pbt":
        return [f"member {m}" for m in range(sweep.size)]
    return [member_label(member) for member in sweep.members()]


TABLE_FILE = "sweep.json"  # in the workdir, at the end of a sweep's run


def table(members: list[dict], test: dict, best_metric: str, higher_is_better: bool) -> list[dict]:
    """Each member's values (`current_members`) and final test metrics (`test`: a
    population's test row, with `*_per_replica`), best first by `best_metric`."""
    rows = []
    for member, values in enumerate(members):
        scores = {
            name.removesuffix(metrics.PER_REPLICA): values_of_all[member]
            for name, values_of_all in test.items()
            if name.endswith(metrics.PER_REPLICA)
        }
        rows.append({"member": member, **values, **scores})
    order = metrics.best_first([row[best_metric] for row in rows], higher_is_better)
    return [rows[i] for i in order]


class SweepTable:
    """The built-in callback that writes workdir/sweep.json (`table`) as a sweep's run ends."""

    def __init__(self, path: str, run):
        self.path, self.run = path, run

    def on_end(self, state, test: dict | None) -> None:
        if test:
            best = self.run.config.best_metric
            opt_state = self.run.strategy.host_state(state).opt_state
            members = current_members(self.run.sweep, opt_state)
            rows = table(members, test, best, metrics.metric(best).higher_is_better)
            files.write_text(self.path, json.dumps(rows, indent=2))


def builtin_callbacks(run, workdir: str) -> list[tuple[str, object]]:
    """(name, callback) of what a sweep's run adds to config.callbacks: its table."""
    if run.sweep is None:
        return []
    path = os.path.join(workdir, TABLE_FILE)
    return [(TABLE_FILE, SweepTable(path, run))]
