"""When the loop does what it does every few epochs (evaluate, checkpoint), and which
epoch's score is the best so far and whether to stop early: small rules read from the
config, in one place."""

from lenet_jax.training import metrics


def first_best(scores: list[float], higher_is_better: bool) -> int:
    """The index of the first best of `scores`."""
    sign = 1 if higher_is_better else -1
    return max(range(len(scores)), key=lambda i: (sign * scores[i], -i))


def is_due(epoch: int, every: int, config) -> bool:
    """Whether something done every `every` epochs (and after the last) is due after
    0-based `epoch`."""
    return epoch + 1 == config.num_epochs or (epoch + 1) % every == 0


def is_eval_epoch(epoch: int, config) -> bool:
    return is_due(epoch, config.eval_every_epochs, config)


def is_checkpoint_epoch(epoch: int, config) -> bool:
    return is_due(epoch, config.checkpoint_every_epochs, config)


def early_stop_reason(history: list[dict], split: str, config, step: int) -> str:
    """Why to stop now, if `early_stopping_patience` evaluations of `split` have passed
    without a better `best_metric`; "" to go on. The rows say, so a rerun of a stopped run
    stops again at once, and one with a larger patience goes on."""
    patience, name = config.early_stopping_patience, config.best_metric
    scores = [r[name] for r in history if r["split"] == split]
    if patience is None or not scores:
        return ""
    best = first_best(scores, metrics.metric(name).higher_is_better)
    if len(scores) - 1 - best < patience:
        return ""
    return (
        f"stopped early after epoch {len(scores)}: {split} {name} has not "
        f"improved for {patience} epochs on epoch {best + 1}'s {scores[best]:.4f} "
        f"(config.early_stopping_patience={patience}); checkpoint at step {step}"
    )
