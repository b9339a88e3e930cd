"""When the loop does what it does every few epochs (evaluate, checkpoint), and which
epoch's score is the best so far: small rules read from the config, in one place."""

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
