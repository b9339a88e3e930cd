"""training/compile_options.py: the CPU library choice, parsed, checked against the installed
jaxlib without aborting, left to a user's own XLA_FLAGS, and really compiled in."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from lenet_jax.errors import UserError
from lenet_jax.training import compile_options, parallel
from lenet_jax.training.run import build_run

YNN = compile_options.YNN_FUSION_TYPE
NHWC = ("NHWC", "HWIO", "NHWC")


def test_named_choices_and_json_objects_parse():
    assert compile_options.parse("auto") == compile_options.AUTO_CPU_OPTIONS
    assert compile_options.parse("xla_default") == {}
    assert compile_options.parse('{"xla_cpu_enable_fast_math": false}') == {
        "xla_cpu_enable_fast_math": False
    }


@pytest.mark.parametrize("bad", ["fast", "[1, 2]", '{"a": [1]}', "{oops"])
def test_anything_else_is_one_line_naming_the_field(bad):
    with pytest.raises(UserError, match=r"^config\.cpu_compiler_options=.*expected \['auto'"):
        compile_options.parse(bad)


def test_other_backends_get_no_options():
    assert compile_options.for_backend("auto", "gpu") == {}
    assert compile_options.for_backend("auto", "cpu") == compile_options.AUTO_CPU_OPTIONS
    with_bn = compile_options.for_backend("auto", "cpu", batch_norm=True)
    assert with_bn == compile_options.AUTO_CPU_OPTIONS_BATCH_NORM
    assert compile_options.for_backend("xla_default", "cpu", batch_norm=True) == {}


def test_an_option_the_users_xla_flags_set_is_left_to_them(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"--{YNN}=individual_dot,reduce")
    assert compile_options.for_backend("auto", "cpu") == {}


def test_an_unknown_option_is_dropped_with_one_warning_not_an_abort(capsys):
    choice = '{"xla_no_such_option_here": true, "xla_cpu_enable_fast_math": false}'
    assert compile_options.for_backend(choice, "cpu") == {"xla_cpu_enable_fast_math": False}
    assert compile_options.for_backend(choice, "cpu") == {"xla_cpu_enable_fast_math": False}
    err = capsys.readouterr().err
    assert err.count("warning: config.cpu_compiler_options") == 1
    assert "xla_no_such_option_here" in err and "XLA's default" in err
    bad_value = f'{{"{YNN}": "LIBRARY_FUSION_TYPE_NOT_A_TYPE"}}'
    assert compile_options.for_backend(bad_value, "cpu") == {}


def _conv_pool_grad(x, k):
    def loss(k):
        y = lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC)
        return jnp.max(y.reshape(8, 16, 2, 16, 2, 32), axis=(2, 4)).sum()

    return jax.grad(loss)(k)


def _ynn_fusions(compiled: jax.stages.Compiled) -> int:
    return len(re.findall(r'"kind":"__ynn_fusion"', compiled.as_text()))


def _inputs(*devices: int):
    return jnp.ones((*devices, 8, 32, 32, 32)), jnp.ones((*devices, 3, 3, 32, 32))


def test_the_strategy_compiles_with_the_options():
    """XLA's default sends this convolution and max-pool to YNNPACK; `auto` keeps them."""
    x, k = _inputs()
    for choice, ynn in (("xla_default", True), ("auto", False)):
        strategy = parallel.create("single", compiler_options=compile_options.for_backend(choice))
        assert (_ynn_fusions(strategy.jit(_conv_pool_grad).lower(x, k).compile()) > 0) == ynn


def test_pmap_compiles_each_signature_once_with_the_options():
    x, k = _inputs(1)
    expected = jax.pmap(_conv_pool_grad)(x, k)
    plain = compile_options.pmap(_conv_pool_grad, {})
    assert _ynn_fusions(plain.lower(x, k).compile()) > 0
    auto = compile_options.pmap(_conv_pool_grad, compile_options.for_backend("auto"))
    assert _ynn_fusions(auto.compile(x, k)) == 0 and auto.compile(x, k) is auto.compile(x, k)
    for mapped in (plain, auto):
        np.testing.assert_allclose(mapped(x, k), expected, rtol=1e-5)


def test_a_program_run_once_compiles_with_the_runs_options():
    """An init or a warm start's state: its own optimisation level over the run's options."""
    x, k = _inputs()
    auto = compile_options.for_backend("auto")
    assert _ynn_fusions(compile_options.compile_once(_conv_pool_grad, x, k, options=auto)) == 0
    assert _ynn_fusions(compile_options.compile_once(_conv_pool_grad, x, k)) > 0
    once = compile_options.run_once(_conv_pool_grad, x, k, options=auto)
    np.testing.assert_allclose(once, jax.jit(_conv_pool_grad)(x, k), rtol=1e-5)


def test_a_run_compiles_with_its_configs_choice(tiny_config):
    tiny_config.model.batch_norm = False
    assert build_run(tiny_config).strategy.compiler_options == compile_options.AUTO_CPU_OPTIONS
    tiny_config.model.batch_norm = True
    bn_options = build_run(tiny_config).strategy.compiler_options
    assert bn_options == compile_options.AUTO_CPU_OPTIONS_BATCH_NORM
    tiny_config.cpu_compiler_options = "xla_default"
    assert build_run(tiny_config).strategy.compiler_options == {}
    tiny_config.cpu_compiler_options = "nope"
    with pytest.raises(UserError, match="config.cpu_compiler_options='nope'"):
        build_run(tiny_config)
