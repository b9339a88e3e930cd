"""Callbacks as a fork writes them (`config.callbacks`): a gradient-free parameter-norm
logger that records every hook it sees, and ones that break the seam."""

import jax
import jax.numpy as jnp

CALLS: list[tuple] = []  # what ParamNormLogger saw, in order, for the tests to read


class ParamNormLogger:
    """Logs the parameters' global norm every few steps and each epoch's test accuracy."""

    every = 4

    def on_start(self, run, state, step):
        CALLS.append(("on_start", step, run.steps_per_epoch))

    def on_step(self, step, state):
        if step % self.every == 0:  # reading the state waits for the device: not every step
            norm = jnp.sqrt(sum(jnp.vdot(p, p) for p in jax.tree.leaves(state.params)))
            CALLS.append(("on_step", step, int(state.step), float(norm)))
            print(f"step {step}: parameter norm {float(norm):.3f}", flush=True)

    def on_epoch_end(self, epoch, state, rows):
        CALLS.append(("on_epoch_end", epoch, int(state.step), rows["test"]["accuracy"]))

    def on_end(self, state, test):
        CALLS.append(("on_end", int(state.step), test["accuracy"]))


class FailsAtEpochTwo:
    def on_epoch_end(self, epoch, state, rows):
        if epoch == 2:
            raise RuntimeError("the notification service is down")


class Silent:
    """Says nothing: no hook."""


class MisspeltHook:
    def on_epoch_ends(self, epoch, state, rows):
        pass


class NeedsAnArgument:
    def __init__(self, url):
        self.url = url

    def on_end(self, state, test):
        pass
