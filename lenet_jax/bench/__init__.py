"""Benchmarks of lenet_jax against eager PyTorch, one job per module.

  machine.py          what was measured on: versions, devices, load; timing summaries
  step_timing.py      the trainer's compiled step: compile, blocked and pipelined
  targets.py          time to target accuracies in a whole `train_and_evaluate`
  torch_reference.py  ../shared/bench/torch_ref.py: which model matches, and running it
  report.py           rounds, ratios and the printed table

`scripts/benchmark.py` is the command line over them.
"""
