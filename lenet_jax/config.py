"""Shared config defaults; the files in `configs/` start from `base_config()`. The checks of
the fields live in `training/config_checks.py`: this module imports nothing from the package
above `errors`, so every layer may read a config.

Every field the trainer reads exists here, so `--config.some.field=...` overrides work
for every config, and a locked config turns a typo into an error. `config.model` alone
stays open: a fork's module declares its own fields, and the config may carry them
(`models.registry` passes each module only the fields it declares).
"""

import importlib.util
import os

import ml_collections

from lenet_jax.errors import UserError, first_line

COMPUTE_DTYPES = ("float32", "bfloat16")


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Data.
    # A dataset with local files (fashion_mnist, mnist, cifar10), or any TFDS
    # image-classification name (kmnist, emnist/letters, cifar100, svhn_cropped, ...).
    config.dataset = "fashion_mnist"
    config.data_dir = ""  # local files; "" = the dataset's default place, then TFDS
    config.tfds_data_dir = ""  # where TFDS datasets are prepared; "" = TFDS's default
    # The splits trained and evaluated on, sliced as TFDS slices: "train[:90%]" and
    # "train[90%:]" carve a validation split out of train.
    config.train_split = "train"
    config.eval_split = "test"
    # A TFDS split whose decoded images exceed this is read a batch at a time from disk.
    config.max_in_memory_mb = 4096.0
    config.num_train_examples = 0  # 0 = the whole train split; fewer for smoke runs
    config.num_test_examples = 0  # 0 = the whole test split
    # A subset of the classes, e.g. (5, 6, 7, 8, 9): relabelled 0..k-1 in this order, so the
    # model has k outputs; () = all of them.
    config.classes = ()
    # Model: `name` picks a registered model or names `package.module:attr`; the other
    # fields go to it where it declares them (a fork adds its own: --config.model.width=32).
    config.model = ml_collections.ConfigDict()
    config.model.name = "lenet_modern"
    # Before the last dense layer; None = the named model's own default (e.g. 0.5 for
    # cifar_cnn_dropout, 0 for the others).
    config.model.dropout_rate = ml_collections.config_dict.placeholder(float)
    # How convolutions run: auto (the banded matmul on CPU where it is faster, else XLA's
    # convolution) | xla | band; None = the model's own default (auto). Same parameters.
    config.model.conv_impl = ml_collections.config_dict.placeholder(str)
    # config.model fields passed to a factory that takes **kwargs even where it names none
    # of them (a stock field is otherwise dropped for it); each --config.model.X=... on the
    # command line adds its X.
    config.model_fields_passed = ()
    # Optimizer and learning-rate schedule.
    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"  # a name from training/optim.py's OPTIMIZERS
    config.optimizer.learning_rate = 1e-3  # peak value of the schedule
    config.optimizer.momentum = 0.9  # sgd only; 0 = plain SGD
    config.optimizer.nesterov = False  # sgd only
    config.optimizer.weight_decay = 0.0  # decoupled for adamw, L2 added to gradients for sgd/adam
    config.optimizer.schedule = "constant"  # a name from training/optim.py's SCHEDULES
    config.optimizer.warmup_epochs = 0.0  # warmup_cosine and warmup_linear only
    # warmup_cosine and warmup_linear: the rate starts at warmup_from x the peak and ends at
    # decay_to x the peak (airbench's 0.2 and 0.07; 0 and 0 are the classic shapes).
    config.optimizer.warmup_from = 0.0
    config.optimizer.decay_to = 0.0
    config.optimizer.clip_norm = 0.0  # clip gradients to this global norm; 0 = off
    # Per-parameter-group settings, the first group whose `params` regex matches a parameter
    # path ("Conv_0/bias") wins: ({"params": "bias|scale", "lr_scale": 10.0,
    # "weight_decay": False},); weight_decay is True (the optimizer's), False (none) or the
    # group's own coefficient. Parameters in no group take the settings above.
    config.optimizer.param_groups = ()
    # The loss minimised: cross_entropy, or a fork's "package.module:function" that gets
    # the model's whole output (docs/custom_model.md).
    config.loss = "cross_entropy"
    # A fork's own code at the loop's moments: ("package.module:Class", ...), each a class
    # with any of on_start, on_step, on_epoch_end, on_end (training/callbacks.py).
    config.callbacks = ()
    config.label_smoothing = 0.0  # cross_entropy's
    # cross_entropy adds this times each `*loss` extra the model returns (aux_loss, ...);
    # 0 reports them in the metrics without minimising them.
    config.aux_loss_weight = 0.0
    config.grad_accum_steps = 1  # average the gradients of this many batches per update
    # An exponential moving average of the parameters, kept in the state and evaluated beside
    # the raw ones ("test_ema" rows); 0 = off, 0.999 = a horizon of about 1000 steps.
    config.ema_decay = 0.0
    config.ema_every_steps = 1  # update the average every this many steps
    # constant | cubic: the decay grows as ema_decay * (step / total steps)^3 (airbench's),
    # so the average follows the parameters closely early on.
    config.ema_ramp = "constant"
    # Lookahead: after each update of the average, the parameters restart from it (the slow
    # weights), which evaluations then use like the EMA.
    config.lookahead = False
    # Warm start and frozen layers; regexes search parameter paths such as "Dense_2/kernel".
    config.init_from = ""  # a workdir (its best checkpoint) or a checkpoint step directory
    config.init_exclude = ""  # parameters not taken from init_from (a new head: "Dense_2")
    config.freeze = ""  # parameters never updated (no optimizer state for them)
    # On-device augmentation inside the compiled step (all off by default).
    config.augment = ml_collections.ConfigDict()
    config.augment.crop_padding = 0  # random crop after reflect-padding this many pixels
    config.augment.flip = False  # random horizontal flip
    # With flip: each image alternates between mirrored and not, epoch by epoch, from a
    # random start (airbench), instead of a fresh coin each step.
    config.augment.flip_alternating = False
    config.augment.cutout_size = 0  # zero a random square of this side
    # Training images the model's init sees (normalised, the first of the train split), for
    # data-dependent inits such as airbench's whitening layer; 0 = one blank image.
    config.init_images = 0
    # Test-time augmentation of every evaluation and prediction: none | flip (the image and
    # its mirror) | flip_translate (also 1-pixel shifts: airbench's).
    config.eval_tta = "none"
    # Loop.
    config.batch_size = 128  # global: split over all devices
    config.eval_batch_size = 0  # 0 = auto (`batches.eval_batch_size`): per backend
    config.num_epochs = 10
    config.seed = 0  # init, dropout, augmentation and data order all derive from it
    # N models trained at once in one compiled step (vmap): replica r has its own init,
    # dropout and augmentation keys, folded from the seed and r. Rows report the mean over
    # replicas with `*_std` and `*_per_replica`; evaluation adds the ensemble's accuracy.
    config.num_replicas = 1
    config.replica_data_order = False  # True: each replica its own data order too
    # How one step walks the replicas: vmap (all at once) | map (one after another, inside
    # the compiled step: faster on a CPU) | auto: map on CPU, vmap on GPU/TPU.
    config.replica_loop = "auto"
    # A hyperparameter sweep in one compiled step (training/sweeps.py): a JSON object of
    # field -> the values to try, e.g. '{"optimizer.learning_rate": [1e-3, 3e-3]}'. Each
    # combination is trained by num_replicas members (its seeds); "" = no sweep.
    config.sweep = ""
    config.sweep_mode = "grid"  # grid (every combination) | zip (the i-th values together)
    # How a sweep's members relate (training/pbt.py): independent (each keeps its values) |
    # pbt (population-based training: every pbt.every_epochs the worst pbt.fraction of the
    # members copy a best member's weights and optimizer state, and its values times one of
    # pbt.perturb's factors each).
    config.sweep_strategy = "independent"
    config.pbt = ml_collections.ConfigDict()
    config.pbt.every_epochs = 1
    config.pbt.fraction = 0.25
    config.pbt.perturb = (0.8, 1.25)
    # The test metric that ranks the checkpoints ("best") and drives early stopping: a name
    # from lenet_jax.training.metrics.METRICS (loss: lower is better; the others: higher).
    config.best_metric = "accuracy"
    # Stop when the best_metric has not improved for this many evaluations (epochs, unless
    # eval_every_epochs > 1); None = never.
    config.early_stopping_patience = ml_collections.config_dict.placeholder(int)
    # Stop at the first step past this many seconds of training (summed over reruns), save
    # and exit 0; rerun with a larger budget to continue. 0 = no budget.
    config.max_train_seconds = 0.0
    # Trace this many steps from step 10 with jax.profiler, into workdir/tensorboard (its
    # profile plugin's place); 0 = off.
    config.profile_steps = 0
    config.log_every_steps = 100  # progress lines within an epoch
    # Evaluate on the test split every this many epochs, and after the last one.
    config.eval_every_epochs = 1
    # Checkpoints.
    config.checkpoint_every_epochs = 1
    config.keep_checkpoints = 2  # the latest N, plus the best by the test best_metric
    # Devices.
    config.parallelism = "auto"  # auto | single | pmap | sharded
    config.epoch_loop = "auto"  # python (a jitted step per batch) | scan (one compiled epoch,
    # data on the device) | auto: scan on GPU/TPU, python on CPU (no faster there as a scan)
    config.compute_dtype = "float32"  # float32 | bfloat16 (activations; parameters stay float32)
    # XLA options of every compiled step on the CPU backend: auto (the measured best for this
    # jaxlib) | xla_default | a JSON object of XLA options. Other backends ignore it.
    config.cpu_compiler_options = "auto"
    # JAX's persistent compilation cache in $LENET_JAX_CACHE/jax (or ~/.cache/lenet_jax/jax):
    # a rerun loads its compiled steps from disk. False compiles afresh.
    config.compilation_cache = True
    # `train` draws workdir/plots/*.png and report.html when the run ends; False leaves them
    # to `evaluate` and `inspect`, for runs nobody looks at (sweeps, scripts, the GPU check).
    config.plots = True
    return config


SMOKE = {"num_train_examples": 2048, "num_test_examples": 1000, "num_epochs": 2}


def with_variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Applies a config file's `:arg`: `smoke` shrinks the run to seconds on a CPU."""
    if arg == "smoke":
        config.update(SMOKE)
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; known: ['smoke']")
    return config


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """Loads `FILE[:arg]` the way `--config` does, locked, for scripts, tests and notebooks.

    A file that is missing, is not Python, fails to run or whose `get_config` fails is one
    `UserError` line naming the file (and the line, for a syntax error).
    """
    path, _, arg = spec.partition(":")
    if os.path.isdir(path):
        raise UserError(f"--config={spec}: {path!r} is a directory; expected a config file")
    name = "lenet_jax_config_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or not os.path.isfile(path):
        raise UserError(f"--config: no config file at {path!r}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UserError(
            f"--config={spec}: a Python syntax error at line {e.lineno} of {path}: {e.msg}"
        ) from None
    except Exception as e:
        raise UserError(
            f"--config={spec}: running {path} raised {type(e).__name__}: {first_line(e, 200)}"
        ) from None
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise UserError(f"--config={spec}: {path} defines no get_config(); expected one")
    try:
        config = get_config(arg) if arg else get_config()
    except Exception as e:
        call = f"get_config({arg!r})" if arg else "get_config()"
        raise UserError(
            f"--config={spec}: {call} raised {type(e).__name__}: {first_line(e, 200)}"
        ) from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(
            f"--config={spec}: get_config returned {type(config).__name__}; expected an "
            "ml_collections.ConfigDict"
        )
    return lock(config)


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Locks every field but `config.model`'s, which a fork extends with its module's own."""
    config.lock()
    config.model.unlock()
    return config
