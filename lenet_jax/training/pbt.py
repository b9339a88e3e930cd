"""Population-based training over a sweep (`config.sweep_strategy='pbt'`).

A sweep's members train side by side in one compiled step (`training.sweeps`). Under PBT,
every `config.pbt.every_epochs` epochs (at an evaluation, and not after the last epoch)
the members are ranked by that evaluation's `config.best_metric`; each of the worst
`config.pbt.fraction` of them copies one of the best fraction, chosen at random: its
parameters, batch statistics, EMA and optimizer state, and its swept values, each times
one of `config.pbt.perturb`'s factors, also chosen at random. The choices are drawn from
a key of the run's seed folded with the epoch, and the state is changed before the
epoch's checkpoint, so a resumed run makes the same choices as an uninterrupted one. Each
exploit step is one row of split "pbt" naming who copied whom and the new values.

A member keeps its own keys (dropout, augmentation) after it copies another: the copies
then diverge.
"""

import dataclasses
import math

import jax
import ml_collections
import numpy as np

from lenet_jax import prng
from lenet_jax.errors import UserError
from lenet_jax.models.calls import stream_key
from lenet_jax.training import metrics, sweeps
from lenet_jax.training.state import TrainState
from lenet_jax.training.sweep_optim import state_name

STRATEGIES = ("independent", "pbt")  # what config.sweep_strategy accepts
SPLIT = "pbt"  # the split of the exploit rows in metrics.jsonl


def check(config: ml_collections.ConfigDict, sweep: sweeps.Sweep | None) -> None:
    """config.pbt's fields (checked whatever the strategy, as every field is), and what PBT
    needs of the rest: a sweep of 2 or more members, and an evaluation at each interval."""
    pbt = config.pbt
    _require(
        isinstance(pbt.every_epochs, int) and pbt.every_epochs >= 1,
        "pbt.every_epochs",
        "a positive number of epochs",
        pbt.every_epochs,
    )
    _require(
        isinstance(pbt.fraction, int | float) and 0 < pbt.fraction <= 0.5,
        "pbt.fraction",
        "a number in (0, 0.5]: the worst fraction of the members copies the best fraction",
        pbt.fraction,
    )
    factors = tuple(pbt.perturb)
    _require(
        bool(factors) and all(_positive(f) for f in factors),
        "pbt.perturb",
        "positive factors, such as (0.8, 1.25), that multiply a copied member's values",
        factors,
    )
    if config.sweep_strategy != "pbt":
        return
    if sweep is None or sweep.size < 2:
        raise UserError(
            "config.sweep_strategy='pbt' needs config.sweep with 2 or more members (the "
            "fields to explore and their starting values)"
        )
    if pbt.every_epochs % config.eval_every_epochs:
        raise UserError(
            f"config.pbt.every_epochs={pbt.every_epochs} is not a multiple of "
            f"config.eval_every_epochs={config.eval_every_epochs}: PBT ranks the members by "
            "the evaluation at each interval"
        )


def _require(ok: bool, field: str, allowed: str, value) -> None:
    if not ok:
        raise UserError(f"config.{field}={value!r} is not allowed; expected {allowed}")


def _positive(value) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


@dataclasses.dataclass(frozen=True)
class Exploit:
    """Member `member` takes member `copied`'s state, with `values` as its swept values."""

    member: int
    copied: int
    values: dict[str, float]


def choose(key: jax.Array, scores, higher_is_better: bool, members: list[dict], pbt) -> list:
    """The exploits of one interval: the worst `pbt.fraction` of the members (by `scores`,
    a NaN the worst of all; ties by member index) each copy one of the best fraction, drawn
    from `key`, with each swept value times a factor drawn from `pbt.perturb`."""
    count = max(1, int(len(members) * pbt.fraction))
    order = metrics.best_first(scores, higher_is_better)
    best, worst = order[:count], order[len(members) - count :]
    fields = [field for field in members[0] if field != "seed"]
    donor_key, factor_key = jax.random.split(key)
    donors = best[np.asarray(jax.random.randint(donor_key, (count,), 0, count))]
    factors = np.asarray(pbt.perturb, np.float64)[
        np.asarray(jax.random.randint(factor_key, (count, len(fields)), 0, len(pbt.perturb)))
    ]
    return [
        Exploit(
            member=int(member),
            copied=int(donor),
            values={
                field: sweeps.typed(
                    field,
                    min(members[donor][field] * factors[i, j], sweeps.FRACTIONS.get(field, np.inf)),
                )
                for j, field in enumerate(fields)
            },
        )
        for i, (member, donor) in enumerate(zip(worst, donors, strict=True))
    ]


def apply(state: TrainState, exploits: list[Exploit]) -> TrainState:
    """A host state with each exploit's member holding its donor's state (everything but
    the shared step) and its new values."""
    source = np.arange(len(np.atleast_1d(next(iter(state.opt_state.hparams.values())))))
    for exploit in exploits:
        source[exploit.member] = exploit.copied
    take = lambda tree: jax.tree.map(lambda x: np.asarray(x)[source], tree)  # noqa: E731
    state = state.replace(
        params=take(state.params),
        opt_state=take(state.opt_state),
        batch_stats=take(state.batch_stats),
        ema_params=take(state.ema_params),
    )
    hparams = {name: np.array(values) for name, values in state.opt_state.hparams.items()}
    for exploit in exploits:
        for field, value in exploit.values.items():
            hparams[state_name(field)][exploit.member] = value
    return state.replace(opt_state=state.opt_state._replace(hparams=hparams))


class Members:
    """A sweep's members as the loop sees them: their values now (each row's `members`)
    and, under PBT, the exploit steps that change them. A run without a sweep has none."""

    def __init__(self, run):
        self.run, self.config = run, run.config
        self.pbt = run.sweep is not None and run.config.sweep_strategy == "pbt"
        self.values: list[dict] | None = None

    def start(self, state) -> None:
        """Reads the members' values from the (placed) state the run starts or resumes at."""
        if self.run.sweep is not None:
            self.values = self._read(self.run.strategy.host_state(state))

    def _read(self, host_state) -> list[dict]:
        return sweeps.current_members(self.run.sweep, jax.device_get(host_state.opt_state))

    def end_epoch(self, state, rows: dict, epoch: int, score_split: str):
        """Adds `members` to each of epoch `epoch`'s rows (0-based) and, when an exploit is
        due (each interval, at an evaluation, not after the last epoch), exploits and adds
        its row; returns the state to train on."""
        for scalars in rows.values() if self.values else ():  # beside `*_per_replica`
            scalars["members"] = self.values
        every, last = self.config.pbt.every_epochs, epoch + 1 == self.config.num_epochs
        if not self.pbt or (epoch + 1) % every or score_split not in rows or last:
            return state
        state, rows[SPLIT] = self._exploit(state, rows[score_split], epoch)
        self.values = rows[SPLIT]["members"]
        return state

    def _exploit(self, state, scores: dict, epoch: int):
        """(the placed state after the exploits, the exploit row). `scores`: the ranking
        split's row, with `*_per_replica`."""
        strategy, name = self.run.strategy, self.config.best_metric
        host = jax.device_get(strategy.host_state(state))
        ranked_by = scores[name + metrics.PER_REPLICA]
        better = metrics.metric(name).higher_is_better
        key = jax.random.fold_in(stream_key(prng.key(self.config.seed), SPLIT), epoch)
        exploits = choose(key, ranked_by, better, self.values, self.config.pbt)
        host = apply(host, exploits)
        row = {
            "metric": name,
            "scores": list(ranked_by),
            "exploits": [dataclasses.asdict(e) for e in exploits],
            "members": self._read(host),
        }
        return strategy.place_state(host), row
