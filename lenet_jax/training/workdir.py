"""The run's resolved config in `workdir/config.json`, and how it differs from a new one."""

import json
import os

import ml_collections

from lenet_jax import files
from lenet_jax.errors import UserError

CONFIG_FILE = "config.json"


def config_path(workdir: str) -> str:
    return os.path.join(workdir, CONFIG_FILE)


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    files.write_text(
        config_path(workdir), config.to_json_best_effort(indent=2, sort_keys=True) + "\n"
    )


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run in `workdir` was started with (for evaluate and predict).

    Read over today's defaults, so a workdir written before a field existed still loads.
    """
    from lenet_jax.config import base_config

    saved = _read_saved(workdir)
    config = base_config()
    _update(config, saved)
    return config


def _read_saved(workdir: str) -> dict:
    """The saved config as JSON; a cut or hand-broken file is one line naming it."""
    path = config_path(workdir)
    try:
        with open(path) as f:
            saved = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(
            f"{path} is not valid JSON (line {e.lineno}: {e.msg}); it records the run's "
            "config: repair it from the run's command line, or use another --workdir"
        ) from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} holds a {type(saved).__name__}; expected a JSON object")
    return saved


def _update(config: ml_collections.ConfigDict, saved: dict) -> None:
    for key, value in saved.items():
        if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
            _update(config[key], value)
        else:
            config[key] = tuple(value) if isinstance(value, list) else value


def config_changes(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
    """Fields whose value differs from the config saved in `workdir`, as 'a.b: old -> new'."""
    if not os.path.exists(config_path(workdir)):
        return []
    old = _flatten(_read_saved(workdir))
    new = _flatten(json.loads(config.to_json_best_effort()))
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
