"""Training: the run builder, the loop and its epoch runners, pure steps, state, metrics,
optimizers, checkpoints, device strategies, preemption and the writers.

`loop.train_and_evaluate(config, workdir)` is the entry point (also `lenet_jax.train`).
"""
