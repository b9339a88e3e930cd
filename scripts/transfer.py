"""The transfer experiment: pretrain on five Fashion-MNIST classes, fine-tune on the other
five from 1% of their labels, frozen vs unfrozen vs from scratch.

  .venv/bin/python scripts/transfer.py --workdir runs/transfer

1. Pretrain `configs/fashion.py` on classes 0-4 (T-shirt/top, Trouser, Pullover, Dress,
   Coat): all 30,000 of their training images.
2. On classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot), train on 300 images (1% of
   their 30,000 labels) and test on all 5,000 of their test images, three ways:
   * frozen: start from the pretrained run (`init_from`), a fresh head (`init_exclude`),
     everything but the head frozen (`freeze`);
   * unfrozen: the same start, every layer trained;
   * scratch: a fresh init.
   Each is a population of `--replicas` models (`num_replicas`): its heads (and the
   scratch run's whole init) differ by replica, so the table gives mean +- std.
Prints a Markdown table and one JSON line. Reruns reuse finished runs in --workdir.
"""

import json
import os
import time
from pathlib import Path

from absl import app, flags, logging

from lenet_jax import cli
from lenet_jax.config import load_config_file
from lenet_jax.training.loop import train_and_evaluate

REPO = Path(__file__).resolve().parents[1]
_WORKDIR = flags.DEFINE_string("workdir", "runs/transfer", "Where the four runs go.")
_REPLICAS = flags.DEFINE_integer("replicas", 4, "Models per fine-tuning variant.")
_LABELS = flags.DEFINE_integer("labels", 300, "Training images of the target classes.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Fashion-MNIST's files; '' = the default.")

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
HEAD = "^Dense_2/"  # lenet_modern's last layer
VARIANTS = {
    "frozen": {"init_exclude": HEAD, "freeze": "^(?!Dense_2/)"},
    "unfrozen": {"init_exclude": HEAD},
    "scratch": {},
}


def base(**fields):
    config = load_config_file(str(REPO / "configs" / "fashion.py"))
    config.data_dir = _DATA_DIR.value
    config.update(fields)
    return config


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.ERROR)  # orbax logs every checkpoint at INFO
    root = Path(_WORKDIR.value)
    with cli.user_errors_as_one_line():
        started = time.perf_counter()
        pretrain = base(classes=SOURCE, num_epochs=6)
        source = train_and_evaluate(pretrain, str(root / "pretrain"))
        results = {}
        for name, fields in VARIANTS.items():
            config = base(
                classes=TARGET,
                num_train_examples=_LABELS.value,
                batch_size=50,
                num_epochs=30,
                num_replicas=_REPLICAS.value,
                log_every_steps=1000,
                **fields,
            )
            if name != "scratch":
                config.init_from = str(root / "pretrain")
            results[name] = train_and_evaluate(config, str(root / name)).test
        seconds = time.perf_counter() - started
    print(f"pretrained on classes {SOURCE}: test accuracy {source.test['accuracy']:.4f}")
    print(
        f"\n| classes {TARGET}, {_LABELS.value} labels | test accuracy (mean ± std, "
        f"{_REPLICAS.value} replicas) | ensemble |\n|---|---|---|"
    )
    for name, test in results.items():
        print(
            f"| {name} | {test['accuracy']:.4f} ± {test.get('accuracy_std', 0.0):.4f} | "
            f"{test.get('ensemble_accuracy', test['accuracy']):.4f} |"
        )
    print(f"\n{seconds:.0f} s in all")
    summary = {
        name: {
            k: test.get(k)
            for k in ("accuracy", "accuracy_std", "ensemble_accuracy", "accuracy_per_replica")
        }
        for name, test in results.items()
    }
    summary["pretrain_accuracy"] = source.test["accuracy"]
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    os.chdir(REPO)
    app.run(main)
