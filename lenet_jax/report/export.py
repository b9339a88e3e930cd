"""One member of a population or sweep as an ordinary run (the `export` command): its config
with the member's values filled in, its checkpoint without the member axis, its own rows.

`evaluate`, `predict`, `summary` and `config.init_from` then read it like any run. The
member's parameters, statistics and EMA are its own; its optimizer state too, except where a
sweep's transformation and the single run's differ in structure (a swept weight decay keeps
its decay step for every member, a run with no decay has none): that run's optimizer then
starts fresh, which the returned summary says.
"""

import json
import os
import shutil

import jax

from lenet_jax import files
from lenet_jax.errors import UserError
from lenet_jax.report.inference import load_run
from lenet_jax.training import checkpointing, metrics, replicas, sweeps
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.metrics import Totals
from lenet_jax.training.metrics_log import METRICS_FILE, workdir_rows
from lenet_jax.training.run import build_run


def export_member(workdir: str, member: str, to: str) -> dict:
    """Writes member `member` ("best", or an index) of the run in `workdir` into the new
    workdir `to`; returns what was exported."""
    created = _new_directory(to)
    try:
        return _export(workdir, member, to)
    except BaseException:
        if created:  # a failed export leaves nothing behind
            shutil.rmtree(to, ignore_errors=True)
        raise


def _new_directory(to: str) -> bool:
    """Makes `to` (an absent or empty directory); whether it was made here."""
    wanted = "a new or empty directory for the exported run"
    if not to:
        raise UserError(f"--to is empty; expected {wanted}")
    if os.path.exists(to):
        if not os.path.isdir(to) or os.listdir(to):
            raise UserError(f"--to={to!r} exists and is not empty; expected {wanted}")
        return False
    try:
        os.makedirs(to)
    except OSError as e:
        raise UserError(f"--to={to[:200]!r}: {e.strerror}; expected {wanted}") from None
    return True


def _export(workdir: str, member: str, to: str) -> dict:
    """The export itself, into the directory `to` that `_new_directory` made ready."""
    snapshot = load_run(workdir, "latest", weights="raw")
    count, sweep = snapshot.run.num_replicas, snapshot.run.sweep
    rows = workdir_rows(workdir)
    index = _member_index(member, count, rows, snapshot.config.best_metric)
    values = {}
    if sweep:  # the member's values as it ended (population-based training changes them)
        values = sweeps.current_members(sweep, snapshot.state.opt_state)[index]
        del values["seed"]
    config = sweeps.filled(snapshot.config, values)
    with config.unlocked():
        config.num_replicas = 1
    run = build_run(config, dataset=snapshot.dataset, parallelism="single")
    state = replicas.select(snapshot.state, index) if count > 1 else snapshot.state
    saved_opt_state = state.opt_state.inner if sweep else state.opt_state
    fresh = run.state_from(state.params, state.batch_stats)
    same = jax.tree.structure(saved_opt_state) == jax.tree.structure(fresh.opt_state)
    state = fresh.replace(
        step=state.step,
        opt_state=saved_opt_state if same else fresh.opt_state,
        ema_params=state.ema_params,
    )
    history = [_member_row(row, index) for row in rows]
    workdir_lib.save_config(to, config)
    files.write_text(os.path.join(to, METRICS_FILE), "".join(json.dumps(r) + "\n" for r in history))
    loop = {"totals": Totals().to_json(), "history": history, "train_seconds": 0.0}
    with checkpointing.Checkpoints(os.path.join(to, "checkpoints"), keep=1) as ckpts:
        ckpts.save(snapshot.step, state, loop)
    return {
        "member": index,
        **values,
        "step": snapshot.step,
        "optimizer_state": "the member's" if same else "fresh (another structure)",
        "workdir": to,
    }


def _member_index(member: str, count: int, rows: list[dict], best_metric: str) -> int:
    """`member` as an index below `count`; "best": the best by the last test row."""
    if member == "best":
        tests = [row for row in rows if row.get("split") == "test"]
        if count == 1 or not tests:
            return 0
        scores = tests[-1][best_metric + metrics.PER_REPLICA]
        better = metrics.metric(best_metric).higher_is_better
        return int(metrics.best_first(scores, better)[0])
    if not member.isdigit() or int(member) >= count:
        raise UserError(f"--member={member!r}: expected best or a member from 0 to {count - 1}")
    return int(member)


def _member_row(row: dict, index: int) -> dict:
    """A population's row as member `index`'s own: its values under the metrics' names."""
    own = {}
    for name, value in row.items():
        population_only = name.endswith(metrics.STD) or name.startswith(metrics.ENSEMBLE)
        if name.endswith(metrics.PER_REPLICA):
            own[name.removesuffix(metrics.PER_REPLICA)] = value[index]
        elif name != "members" and not population_only:
            own.setdefault(name, value)
    return own
