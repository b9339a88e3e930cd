"""`init_from`, `init_exclude`, `freeze` and `classes` on real checkpoints: a fine-tune takes
the source's parameters, keeps frozen ones exactly, gives a new head its fresh init, and
every mismatch is one line naming the parameter."""

import jax
import numpy as np
import pytest
from conftest import tiny_config_for

from lenet_jax.errors import UserError
from lenet_jax.report.inference import load_run
from lenet_jax.training.loop import train_and_evaluate
from lenet_jax.training.run_data import load_data


@pytest.fixture(scope="module")
def five_class_run(tiny_mnist_dir, tmp_path_factory):
    """A run trained on classes 0-4 only."""
    config = tiny_config_for(tiny_mnist_dir, num_epochs=1)
    config.classes = (0, 1, 2, 3, 4)
    workdir = tmp_path_factory.mktemp("five_classes")
    train_and_evaluate(config, str(workdir))
    return workdir


def test_classes_selects_and_relabels_in_the_order_given(tiny_config):
    full = load_data(tiny_config)
    tiny_config.classes = (7, 2)
    picked = load_data(tiny_config)
    assert picked.num_classes == 2
    assert picked.class_names == (full.class_names[7], full.class_names[2])
    assert len(picked.train_labels) == int(np.isin(full.train_labels, (7, 2)).sum())
    np.testing.assert_array_equal(
        picked.train_labels,
        np.where(full.train_labels[np.isin(full.train_labels, (7, 2))] == 7, 0, 1),
    )
    tiny_config.classes = (3, 10)
    with pytest.raises(UserError, match=r"config.classes=\(3, 10\): mnist has classes 0 to 9"):
        load_data(tiny_config)


def test_fine_tune_keeps_frozen_layers_and_gives_the_new_head_a_fresh_init(
    five_class_run, tiny_config, tmp_path
):
    source = load_run(str(five_class_run), "best").state.params
    tiny_config.num_epochs = 1
    tiny_config.classes = (5, 6, 7, 8, 9, 0, 1)  # 7 classes: the 5-class head cannot be reused
    tiny_config.init_from = str(five_class_run)
    tiny_config.init_exclude = "^Dense_2/"
    tiny_config.freeze = "^Conv_"
    result = train_and_evaluate(tiny_config, str(tmp_path))
    params = result.state.params
    for layer in ("Conv_0", "Conv_1"):  # taken from the source and never updated
        for name in ("kernel", "bias"):
            np.testing.assert_array_equal(params[layer][name], source[layer][name])
    assert params["Dense_2"]["kernel"].shape == (84, 7)
    assert not np.allclose(params["Dense_0"]["kernel"], source["Dense_0"]["kernel"])  # trained on
    # No optimizer state for the frozen convolutions: Adam's moments cover the rest only.
    sizes = sorted(x.size for x in jax.tree.leaves(result.state.opt_state) if x.ndim)
    trainable = sorted(
        x.size for k, layer in params.items() if not k.startswith("Conv") for x in layer.values()
    )
    assert sizes == sorted(trainable * 2)


def test_mismatches_and_other_models_get_one_line_naming_the_parameter(
    five_class_run, tiny_config, tmp_path
):
    tiny_config.init_from = str(five_class_run)
    with pytest.raises(
        UserError,
        match=r"'Dense_2/bias' is \(5,\) there but \(10,\) here; list it in config.init_exclude",
    ):
        train_and_evaluate(tiny_config, str(tmp_path / "head"))
    tiny_config.model.name = "lenet5_1998"
    with pytest.raises(
        UserError,
        match=r"model 'lenet_modern'; this run's is 'lenet5_1998'\) has no parameter 'C1/bias'",
    ):
        train_and_evaluate(tiny_config, str(tmp_path / "other_model"))
    tiny_config.model.name = "lenet_modern"
    tiny_config.init_from = str(tmp_path / "nothing_here")
    with pytest.raises(UserError, match=r"config.init_from=.*nothing_here': not a run's workdir"):
        train_and_evaluate(tiny_config, str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()  # refused before the workdir is touched


def test_a_checkpoint_step_directory_is_a_source_too(five_class_run, tiny_config, tmp_path):
    step_dir = sorted((five_class_run / "checkpoints").iterdir())[-1]
    tiny_config.classes = (0, 1, 2, 3, 4)
    tiny_config.num_epochs = 1
    tiny_config.init_from = str(step_dir)
    tiny_config.freeze = "."  # everything: the run must end where the source was
    result = train_and_evaluate(tiny_config, str(tmp_path))
    source = load_run(str(five_class_run), step_dir.name).state.params
    jax.tree.map(np.testing.assert_array_equal, result.state.params, source)
