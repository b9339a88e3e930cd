"""JAX's persistent compilation cache, on by default (`config.compilation_cache`).

A rerun, a resumed run, `evaluate` and the test suite then load the compiled train and eval
steps from disk instead of compiling them again. The cache lives beside the decoded data,
in `$LENET_JAX_COMPILATION_CACHE`, else `<cache dir>/jax` (`data.cache.cache_dir`); JAX keys
each entry by the program, the devices and the flags, so a stale entry is never used.
"""

import os

import jax

from lenet_jax.data.cache import cache_dir

ENV = "LENET_JAX_COMPILATION_CACHE"
# Programs that compile faster than this are not worth a file (eager ops compile in ms).
MIN_COMPILE_SECONDS = 0.0


def directory() -> str:
    return os.environ.get(ENV) or os.path.join(cache_dir(), "jax")


def enable() -> None:
    """Turns the cache on for this process; it takes effect before the first compilation."""
    jax.config.update("jax_compilation_cache_dir", directory())
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
