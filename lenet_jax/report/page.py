"""`workdir/report.html`: one self-contained page of a run, to open from disk or mail.

The config, the final train and test rows (and eval.json's figures where `evaluate` wrote
them), then every picture in `workdir/plots/` with a line on how to read it. Images are
embedded as data URIs; the page has no script and loads nothing: no server, no network,
no remote fonts.
"""

import base64
import html
import json
import os

from lenet_jax import files
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.metrics_log import workdir_rows

REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
EVAL_FILE = "eval.json"  # `evaluate`'s report, in the workdir
# The pictures in the page's order, with how to read each.
PICTURES = {
    "curves": "Loss and accuracy per epoch: a test accuracy that stalls while the train "
    "accuracy climbs is overfitting.",
    "confusion": "Rows are true classes, columns predictions; off the diagonal are mistakes.",
    "misclassified": "Test images the network got wrong, with what it said.",
    "sweep": "A sweep's members: the final test metric against each swept value, the seeds' "
    "mean and spread per value of the other fields.",
    "filters": "The first convolution's kernels (what it matches in the pixels), and how "
    "strongly each deeper kernel reads each input channel.",
    "feature_maps": "One image through the network: each convolution's and pooling layer's "
    "output channels, bright where the channel responds.",
    "saliency": "Where the network looks: the gradient of the class score with respect to "
    "each pixel, and Grad-CAM on the last convolution, for the predicted and the true class.",
    "embedding": "What the classifier reads, for every test image, projected to two "
    "dimensions (PCA): classes the network separates form their own clusters.",
    "classes": "Per class, its most confident right answers and its most confident mistakes.",
}
_STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}"
    "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
    "pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:85%}"
)


def write_report(workdir: str) -> str:
    """Writes `workdir/report.html` (whole or not at all) and returns its path."""
    config = workdir_lib.load_config(workdir)
    rows = workdir_rows(workdir)
    title = f"{config.model.name} on {config.dataset}"
    parts = [f"<h1>{html.escape(title)}</h1>", _final_rows(rows), _evaluation(workdir)]
    for name, caption in PICTURES.items():
        path = os.path.join(workdir, PLOTS_DIR, f"{name}.png")
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
            parts.append(
                f"<h2>{name.replace('_', ' ')}</h2><p>{html.escape(caption)}</p>"
                f'<img alt="{name}" src="data:image/png;base64,{data}">'
            )
    parts.append(f"<h2>config</h2><pre>{html.escape(config.to_json(indent=2))}</pre>")
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )
    path = os.path.join(workdir, REPORT_FILE)
    files.write_text(path, page)
    return path


def _final_rows(rows: list[dict]) -> str:
    """A table of the last train and test rows' loss and accuracy."""
    last = {}
    for row in rows:
        if row.get("split") in ("train", "test"):
            last[row["split"]] = row
    if not last:
        return "<p>No metrics rows yet.</p>"
    cells = "".join(
        f"<tr><th>{split}</th><td>{row.get('epoch', '')}</td><td>{row.get('step', '')}</td>"
        f"<td>{row.get('loss', float('nan')):.4f}</td>"
        f"<td>{row.get('accuracy', float('nan')):.4f}</td></tr>"
        for split, row in last.items()
    )
    head = "<tr><th></th><th>epoch</th><th>step</th><th>loss</th><th>accuracy</th></tr>"
    return f"<h2>final metrics</h2><table>{head}{cells}</table>"


def _evaluation(workdir: str) -> str:
    """eval.json's headline figures, where `evaluate` has written them."""
    path = os.path.join(workdir, EVAL_FILE)
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        report = json.load(f)
    per_class = report.get("per_class_accuracy", {})
    cells = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{value:.4f}</td></tr>"
        for name, value in per_class.items()
    )
    return (
        f"<h2>evaluation (step {report.get('step')}, {report.get('num_examples')} examples)"
        f"</h2><table><tr><th>class</th><th>accuracy</th></tr>{cells}</table>"
    )
