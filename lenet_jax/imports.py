"""`package.module:attr` names: how a config names a fork's model or loss."""

import importlib

from lenet_jax.errors import UserError


def import_attribute(
    path: str, field: str, *, expected: str = "", error: type[UserError] = UserError
) -> object:
    """The object `path` names. A module that cannot be imported, or that lacks the
    attribute, is one `error` line naming config.`field` (and `expected`, what it wants)."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise error(f"config.{field}={path!r}: cannot import {module_name!r} ({e})") from None
    found = getattr(module, attr, None)
    if found is None:
        wanted = f"; expected {expected}" if expected else ""
        raise error(f"config.{field}={path!r}: {module_name!r} has no {attr!r}{wanted}")
    return found
