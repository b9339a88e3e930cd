"""A flax.linen module behind the model contract (`models.contract`): the mode from a
`train`/`training` (or inverted `deterministic`) keyword of `__call__`, else from a module
field of one of those names, else none; BatchNorm statistics in "batch_stats"."""

from flax import linen as nn

from lenet_jax.models.calls import INVERTED_MODE_NAMES, MODE_NAMES, mode_of_call
from lenet_jax.models.contract import Model


class LinenModel(Model):
    """A flax.linen module instance behind the contract."""

    def __init__(self, name: str, module: nn.Module):
        super().__init__(name)
        self.module = module
        self._call_kwarg, self._call_inverted = mode_of_call(type(module).__call__)
        self._field = None
        if self._call_kwarg is None:
            fields = getattr(type(module), "__dataclass_fields__", {})
            self._field = next((f for f in MODE_NAMES + INVERTED_MODE_NAMES if f in fields), None)
        self._modules = {train: self._module_for(train) for train in (False, True)}

    def _module_for(self, train: bool) -> nn.Module:
        if self._field is None:
            return self.module
        return self.module.clone(**{self._field: train != (self._field in INVERTED_MODE_NAMES)})

    def call_kwargs(self, train: bool) -> dict:
        """The keyword `__call__` takes for the mode ({} when the mode is a field or absent)."""
        if self._call_kwarg is None:
            return {}
        return {self._call_kwarg: train != self._call_inverted}

    def module_for(self, train: bool) -> nn.Module:
        return self._modules[train]

    def init(self, key, images):
        variables = self._modules[False].init(key, images, **self.call_kwargs(False))
        return variables["params"], variables.get("batch_stats", {})

    def _apply(self, params, batch_stats, images, *, train, rngs):
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        module, kwargs = self._modules[train], self.call_kwargs(train)
        if train and batch_stats:
            out, updates = module.apply(
                variables, images, **kwargs, rngs=rngs, mutable=["batch_stats"]
            )
            return out, updates["batch_stats"]
        return module.apply(variables, images, **kwargs, rngs=rngs), batch_stats


def as_model(model: "Model | nn.Module") -> Model:
    """`model` itself, or a bare linen module instance put behind the contract."""
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        return LinenModel(type(model).__name__, model)
    raise TypeError(f"expected a contract Model or a linen Module, got {type(model).__name__}")
