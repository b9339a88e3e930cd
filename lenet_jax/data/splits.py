"""Split names with TFDS's slicing syntax, for the local sources too.

`config.train_split` and `config.eval_split` name a split, optionally sliced the way
TFDS slices: `train[:90%]`, `train[90%:]`, `test[:1000]`, `train[-5000:]`. A TFDS dataset
passes the text to TFDS unchanged (which also allows `train+validation`); local files
(IDX, image folders) have a `train` and a `test` split, sliced here with TFDS's rounding,
so the same config carves the same validation split out of either source.
"""

import dataclasses
import re

from lenet_jax.errors import UserError

_SPLIT = re.compile(r"^(?P<name>[A-Za-z_][\w-]*)(?:\[(?P<start>[^:\]]*):(?P<stop>[^:\]]*)\])?$")
_BOUND = re.compile(r"^-?\d+%?$")


@dataclasses.dataclass(frozen=True)
class SplitSlice:
    """`name[start:stop]`; a bound is an example count or, ending in %, a percentage."""

    name: str
    start: str = ""
    stop: str = ""

    def bounds(self, num_examples: int) -> slice:
        """The example range this slice selects from a split of `num_examples`."""
        return slice(_absolute(self.start, num_examples), _absolute(self.stop, num_examples))


def parse_split(text: str, field: str) -> SplitSlice:
    """`text` parsed, or one error naming `config.<field>` and the syntax allowed."""
    match = _SPLIT.match(text.strip())
    bounds = (match["start"] or "", match["stop"] or "") if match else ()
    if not match or any(b and not _BOUND.match(b.strip()) for b in bounds):
        raise UserError(
            f"config.{field}={text!r}: expected a split name, optionally sliced as TFDS "
            "slices: 'train', 'train[:90%]', 'train[90%:]', 'test[:1000]'"
        )
    return SplitSlice(match["name"], bounds[0].strip(), bounds[1].strip())


def _absolute(bound: str, num_examples: int) -> int | None:
    if not bound:
        return None
    if bound.endswith("%"):
        percent = int(bound[:-1])
        if abs(percent) > 100:
            raise UserError(f"split bound {bound!r}: a percentage is between -100% and 100%")
        return round(percent * num_examples / 100)  # TFDS's default rounding ("closest")
    return int(bound)
