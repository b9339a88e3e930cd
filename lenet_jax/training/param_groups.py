"""Parameters selected by regex: frozen ones and per-group optimizer settings.

A parameter's path is its names in the params tree joined by "/" ("Conv_0/kernel",
"Dense_2/bias", "Block_0/BatchNorm_0/scale"). Patterns are searched (`re.search`), so
"bias" matches every bias and "^Dense_2/" one layer. Every parameter gets one label:
`FROZEN` if `config.freeze` matches it, else the first group of
`config.optimizer.param_groups` whose `params` matches it, else `DEFAULT`.
"""

import re
from collections.abc import Mapping, Sequence

import jax

from lenet_jax.errors import UserError

FROZEN = "frozen"
DEFAULT = "default"
# What a group may set, and the type each takes.
# weight_decay: True (the optimizer's), False (none) or the group's own coefficient.
GROUP_FIELDS = {"params": (str,), "lr_scale": (int, float), "weight_decay": (bool, int, float)}


def path_name(key_path) -> str:
    """'Conv_0/kernel' for a key path of a params tree (dict keys, dataclass fields)."""
    return jax.tree_util.keystr(key_path, simple=True, separator="/")


def param_paths(params) -> list[str]:
    return [path_name(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def group_label(index: int) -> str:
    return f"group_{index}"


def check_groups(groups: Sequence) -> None:
    """The shape of `config.optimizer.param_groups`, in one line naming the group."""
    for i, group in enumerate(groups):
        where = f"config.optimizer.param_groups[{i}]"
        if not isinstance(group, Mapping) or "params" not in group:
            raise UserError(
                f"{where}={group!r}: expected a dict with a 'params' regex, e.g. "
                "{'params': 'bias', 'lr_scale': 10.0, 'weight_decay': False}"
            )
        for key, value in group.items():
            if key not in GROUP_FIELDS:
                raise UserError(f"{where}: unknown setting {key!r}; known: {list(GROUP_FIELDS)}")
            negative = key == "weight_decay" and not isinstance(value, bool) and value < 0
            if (
                not isinstance(value, GROUP_FIELDS[key])
                or (key == "lr_scale" and value <= 0)
                or negative
            ):
                allowed = {
                    "params": "a regex",
                    "lr_scale": "a positive number",
                    "weight_decay": "True, False or a coefficient >= 0",
                }[key]
                raise UserError(f"{where}: {key}={value!r}; expected {allowed}")
        try:
            re.compile(group["params"])
        except re.error as e:
            raise UserError(f"{where}: params={group['params']!r} is not a regex ({e})") from None


def label_of(path: str, *, freeze: str, groups: Sequence[Mapping]) -> str:
    if freeze and re.search(freeze, path):
        return FROZEN
    for i, group in enumerate(groups):
        if re.search(group["params"], path):
            return group_label(i)
    return DEFAULT


def labels(params, *, freeze: str, groups: Sequence[Mapping]):
    """The params tree with each leaf replaced by its label (for `optax.multi_transform`)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: label_of(path_name(path), freeze=freeze, groups=groups), params
    )


def check_matches(params, *, freeze: str, groups: Sequence[Mapping]) -> None:
    """Each pattern must select some parameter: one that selects none is a typo, and the
    line lists the paths there are."""
    paths = param_paths(params)
    patterns = [("config.freeze", freeze)] if freeze else []
    patterns += [
        (f"config.optimizer.param_groups[{i}].params", g["params"]) for i, g in enumerate(groups)
    ]
    for field, pattern in patterns:
        if not any(re.search(pattern, path) for path in paths):
            raise UserError(
                f"{field}={pattern!r} matches no parameter; the parameters are: {paths}"
            )
