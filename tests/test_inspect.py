"""The look inside (`lenet_jax.inspect`, `report.inside`, `models.probe`): the layers are
the module's own values, saliency is the gradient, Grad-CAM lives on its layer's grid, the
embedding has every test example, and report.html is one self-contained page."""

import html.parser
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cli_checks import error_lines, in_process
from conftest import IN_CI, REPO, tiny_config_for

from lenet_jax import prng
from lenet_jax.inspect import inspect_workdir
from lenet_jax.models import probe
from lenet_jax.models.registry import build_model
from lenet_jax.report import inside
from lenet_jax.report.inference import load_run
from lenet_jax.training import loop, steps

PICTURES = ["filters", "feature_maps", "saliency", "embedding", "classes"]


@pytest.fixture(scope="module")
def finished(tiny_mnist_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("inspected")
    loop.train_and_evaluate(tiny_config_for(tiny_mnist_dir, num_epochs=1), str(workdir))
    return workdir


@pytest.fixture(scope="module")
def snapshot(finished):
    return load_run(str(finished))


def test_the_layers_are_the_modules_own_intermediate_values(snapshot):
    images = snapshot.dataset.split("test")[0][:3]
    probed = inside.look(snapshot, images)
    x = steps.normalize(jnp.asarray(images), snapshot.dataset.mean, snapshot.dataset.std)
    _, captured = snapshot.model.module.apply(
        {"params": snapshot.state.params}, x, train=False, capture_intermediates=True
    )
    expected = {
        name: value["__call__"][0]
        for name, value in captured["intermediates"].items()
        if name != "__call__"
    }
    assert [(layer.path, layer.kind) for layer in probed.layers] == [
        ("Conv_0", "conv"), ("Pool_0", "pool"), ("Conv_1", "conv"), ("Pool_1", "pool")
    ]  # fmt: skip
    for layer in probed.layers:
        np.testing.assert_array_equal(layer.output, expected[layer.path])
    np.testing.assert_array_equal(
        probed.layers[0].kernel, snapshot.state.params["Conv_0"]["kernel"]
    )


def test_an_nnx_modules_layers_come_from_its_graph():
    """flax's NNX idiom: the conv's recorded output is the submodule's own call's."""
    import ml_collections

    model = build_model(
        ml_collections.ConfigDict({"name": "fork_models.nnx_idioms:CallRngsCNN"}), num_classes=10
    )
    model.check((28, 28, 1), 10)
    x = jax.random.normal(prng.key(1), (2, 28, 28, 1))
    params, stats = jax.jit(model.init)(prng.key(0), x)
    probed = jax.jit(lambda x: probe.probe(model, params, stats, x))(x)
    module = model.merged(params, stats, train=False)
    assert [(layer.path, layer.kind) for layer in probed.layers] == [("conv", "conv")]
    np.testing.assert_allclose(probed.layers[0].output, module.conv(x), rtol=1e-6, atol=1e-6)
    reference = model.apply(params, stats, x, train=False, rngs=model.rngs(prng.key(0)))[0]
    np.testing.assert_allclose(probed.logits, reference, rtol=1e-5, atol=1e-5)


def test_saliency_is_the_gradient_of_the_class_score_with_respect_to_the_input(snapshot):
    images, labels = snapshot.dataset.split("test")
    images, labels = images[:2], labels[:2]
    predict = snapshot.run.predict_step()

    def score(pixels, cls):
        return predict(snapshot.state, pixels[None])[0, cls]

    gradient = jax.jit(jax.grad(score))  # one program for both images, not op by op
    for i in range(2):
        expected = gradient(jnp.asarray(images[i], jnp.float32), labels[i])
        got = inside.input_saliency(snapshot, images[i : i + 1], labels[i : i + 1])[0]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert np.abs(got).max() > 0


def test_grad_cam_lives_on_its_layers_grid(snapshot):
    images, labels = snapshot.dataset.split("test")
    path, cams = inside.grad_cam(snapshot, images[:3], labels[:3], layer="Conv_1")
    # Three images, as the layers test looks at: one compiled probe for the module.
    layer = inside.layer_named(inside.look(snapshot, images[:3]), "Conv_1")
    assert path == "Conv_1" and cams.shape == (3, *layer.output.shape[1:3])
    assert (cams >= 0).all() and cams.max() > 0
    default, cams = inside.grad_cam(snapshot, images[:1], labels[:1])
    assert default == "Pool_1" and cams.shape == (1, 5, 5)


def test_the_embedding_has_one_point_per_test_example(snapshot):
    features, logits = inside.split_features(snapshot)
    labels = snapshot.dataset.split("test")[1]
    assert features.shape == (len(labels), 84)  # what the classifier's Dense reads
    points, share = inside.pca(features)
    assert points.shape == (len(labels), 2) and 0 < share.sum() <= 1
    predict = jax.jit(snapshot.run.predict_step())  # one program, not op by op
    predicted = predict(snapshot.state, snapshot.dataset.split("test")[0])
    np.testing.assert_allclose(logits, predicted, rtol=1e-4, atol=1e-4)


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.remote, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and not (value or "").startswith("data:"):
                self.remote.append(value)
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def test_inspect_writes_every_picture_and_a_self_contained_report(finished, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir)
    written = inspect_workdir(str(workdir))
    names = [*PICTURES, "curves", "confusion", "misclassified"]
    assert written == [str(workdir / "plots" / f"{n}.png") for n in names] + [
        str(workdir / "report.html")
    ]
    for path in written[:-1]:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    page = _Page()
    page.feed((workdir / "report.html").read_text())
    assert "script" not in page.tags and "link" not in page.tags and not page.remote
    assert len(page.images) == len(names)
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    _browser_check(workdir / "report.html", len(page.images))


def _browser_check(report, count: int) -> None:
    """Where Debian's chromium is installed: it renders every image of the page with the
    network cut off (a fetch from outside would fail and leave an image unloaded)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        assert not IN_CI, "no chromium: CI installs it (scripts/setup.sh dev) for this check"
        return
    probe_page = report.with_name("probe.html")
    script = (
        "<script>window.onload=()=>{const i=[...document.images];document.title="
        "i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length+'/'+"
        "performance.getEntriesByType('resource').length}</script>"
    )
    probe_page.write_text(report.read_text().replace("</body>", script + "</body>"))
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", probe_page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert f"<title>{count}/{count}/0</title>" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"paths": ["{tmp}/nope.png"]}, "error: {tmp}/nope.png: no such file"),
        ({"layer": "Conv_9"}, "error: --layer='Conv_9': no such layer; the model's layers: "),
        ({"checkpoint": "7"}, "error: --checkpoint='7': no such checkpoint; available: "),
        ({"member": "3"}, "error: --member=3: the run trained one model; expected best or 0"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(finished, tmp_path, arguments, message):
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir)
    before = sorted((p, os.path.getmtime(p)) for p in workdir.rglob("*"))
    arguments = {
        k: [p.format(tmp=tmp_path) for p in v] if k == "paths" else v for k, v in arguments.items()
    }
    code, stderr = in_process(lambda: inspect_workdir(str(workdir), **arguments))
    assert code == 2 and len(error_lines(stderr)) == 1, stderr
    assert error_lines(stderr)[0].startswith(message.format(tmp=tmp_path)), stderr
    assert sorted((p, os.path.getmtime(p)) for p in workdir.rglob("*")) == before


def test_a_workdir_without_checkpoints_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "lenet_jax.inspect", f"--workdir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip() == f"error: --workdir={str(tmp_path)!r} holds no run (no config.json)"
    )
    assert not any(tmp_path.iterdir())


def test_a_layers_grid_on_the_input_is_measured_where_it_looks(snapshot):
    """The tiny LeNet: conv 5x5 pad 2, pool 2, conv 5x5 VALID, pool 2. Pool_1's cell k
    averages Conv_1's cells 2k and 2k+1, centred on Pool_0's cells 2k+2.5, i.e. on pixel
    4k + 5.5: a 5x5 grid over the middle of the 28x28 image, not stretched over all of it."""
    row0, row_step, col0, col_step = inside.layer_grid(snapshot, "Pool_1")
    assert (row0, row_step, col0, col_step) == (5.5, 4, 5.5, 4)
    row0, row_step, _, _ = inside.layer_grid(snapshot, "Conv_0")  # SAME: every pixel
    assert (row0, row_step) == (0, 1)
