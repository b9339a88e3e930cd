"""The run's resolved config in `workdir/config.json`, and how it differs from a new one."""

import json
import os

import ml_collections

CONFIG_FILE = "config.json"


def config_path(workdir: str) -> str:
    return os.path.join(workdir, CONFIG_FILE)


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    os.makedirs(workdir, exist_ok=True)
    tmp = config_path(workdir) + ".tmp"
    with open(tmp, "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    os.replace(tmp, config_path(workdir))


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run in `workdir` was started with (for evaluate and predict)."""
    with open(config_path(workdir)) as f:
        return ml_collections.ConfigDict(json.load(f))


def config_changes(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
    """Fields whose value differs from the config saved in `workdir`, as 'a.b: old -> new'."""
    if not os.path.exists(config_path(workdir)):
        return []
    with open(config_path(workdir)) as f:
        old = _flatten(json.load(f))
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
