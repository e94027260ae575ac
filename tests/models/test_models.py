"""Tests of twostream_jax.models: shapes, parameter counts, torch-exact layers, options."""

import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twostream_jax import models
from twostream_jax.models import layers

REPO_ROOT = Path(__file__).resolve().parents[2]


def _shapes(name, num_classes, size, channels=3, **kwargs):
  model = models.build_model(name, num_classes, **kwargs)
  x = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
  return jax.eval_shape(lambda inp: model.init(jax.random.key(0), inp, train=False), x)


def _normal(seed, shape):
  # numpy, not jax.random: each new jax.random shape costs a compilation (~1 s on 2 cores).
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _random_variables(model, x, seed=0):
  """Variables with the model's structure filled from numpy: no slow compiled PRNG init."""
  shapes = jax.eval_shape(lambda inp: model.init(jax.random.key(0), inp, train=False), x)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == 'var':
      return np.ones(leaf.shape, np.float32)
    if name in ('mean', 'bias'):
      return np.zeros(leaf.shape, np.float32)
    if name == 'scale':
      return np.ones(leaf.shape, np.float32)
    fan_in = math.prod(leaf.shape[:-1])
    return (rng.standard_normal(leaf.shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _count(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


# ---------------------------------------------------------------------------------------------
# Parameter counts, derived from the architectures' definitions (torchvision's layouts).


def _conv(cin, cout, k, bias=False):
  return cin * cout * k * k + (cout if bias else 0)


def _bn(c):
  return 2 * c  # weight and bias; running statistics are buffers, not parameters.


def _resnet_count(blocks, bottleneck, num_classes=1000, in_ch=3):
  total = _conv(in_ch, 64, 7) + _bn(64)
  cin = 64
  for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
    for b in range(n):
      stride = 2 if stage > 0 and b == 0 else 1
      if bottleneck:
        cout = 4 * width
        total += (_conv(cin, width, 1) + _bn(width) + _conv(width, width, 3) + _bn(width)
                  + _conv(width, cout, 1) + _bn(cout))
      else:
        cout = width
        total += _conv(cin, width, 3) + _bn(width) + _conv(width, width, 3) + _bn(width)
      if stride != 1 or cin != cout:
        total += _conv(cin, cout, 1) + _bn(cout)
      cin = cout
  return total + cin * num_classes + num_classes


def _vgg16_count(batch_norm, num_classes=1000):
  total, cin = 0, 3
  for cout in (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512):
    total += _conv(cin, cout, 3, bias=True) + (_bn(cout) if batch_norm else 0)
    cin = cout
  fc6, fc7 = 512 * 7 * 7 * 4096 + 4096, 4096 * 4096 + 4096
  return total + fc6 + fc7 + 4096 * num_classes + num_classes


@pytest.mark.parametrize('name,expected,documented', [
    # documented: torchvision's published meta['num_params'] of the ImageNet weights.
    ('resnet18', _resnet_count((2, 2, 2, 2), False), 11_689_512),
    ('resnet34', _resnet_count((3, 4, 6, 3), False), 21_797_672),
    ('resnet50', _resnet_count((3, 4, 6, 3), True), 25_557_032),
    ('resnet101', _resnet_count((3, 4, 23, 3), True), 44_549_160),
    ('resnet152', _resnet_count((3, 8, 36, 3), True), 60_192_808),
    ('vgg16', _vgg16_count(False), 138_357_544),
    ('vgg16_bn', _vgg16_count(True), 138_365_992),
])
def test_parameter_counts_equal_torchvision(name, expected, documented):
  assert expected == documented
  variables = _shapes(name, 1000, 224)
  assert _count(variables['params']) == expected
  assert ('batch_stats' in variables) == (name != 'vgg16')


def test_tiny_is_tiny_and_counts_as_derived():
  variables = _shapes('tiny', 10, 32)
  expected = _conv(3, 32, 3) + _bn(32) + _conv(32, 64, 3) + _bn(64) + 64 * 10 + 10
  assert _count(variables['params']) == expected
  assert 10_000 <= expected < 100_000


def test_small_counts_as_derived_and_accepts_any_channels():
  variables = _shapes('small', 6, 96, channels=10)
  expected = (_conv(10, 32, 5) + _bn(32) + _conv(32, 64, 3) + _bn(64) + _conv(64, 128, 3) + _bn(128)
              + _conv(128, 128, 3) + _bn(128) + 128 * 6 + 6)
  assert _count(variables['params']) == expected


# ---------------------------------------------------------------------------------------------
# CNN-M-2048 (Simonyan & Zisserman 2014, Fig. 1; pooling rounds up as in Caffe's CNN-M).


def _conv_out(n, k, s, p):
  return (n + 2 * p - k) // s + 1


def _pool_out(n, k=3, s=2):
  return -(-(n - k) // s) + 1


def test_cnn_m_layer_shapes_at_224():
  c1 = _conv_out(224, 7, 2, 0)
  p1 = _pool_out(c1)
  c2 = _conv_out(p1, 5, 2, 1)
  p2 = _pool_out(c2)
  p5 = _pool_out(p2)
  assert (c1, p1, c2, p2, p5) == (109, 54, 26, 13, 6)  # (224 - 7) // 2 + 1 = 109, ...
  model = models.build_model('cnn_m_2048', 101)
  x = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
  _, state = jax.eval_shape(
      lambda inp: model.init_with_output(jax.random.key(0), inp, mutable=['params',
                                                                            'intermediates']), x)
  got = {k: v[0].shape[1:] for k, v in state['intermediates'].items()}
  assert got == {
      'conv1_relu': (c1, c1, 96), 'pool1': (p1, p1, 96),
      'conv2_relu': (c2, c2, 256), 'pool2': (p2, p2, 256),
      'conv3_relu': (p2, p2, 512), 'conv4_relu': (p2, p2, 512), 'conv5_relu': (p2, p2, 512),
      'pool5': (p5, p5, 512), 'full6_relu': (4096,), 'full7_relu': (2048,)}
  params = state['params']
  assert params['conv1']['kernel'].shape == (7, 7, 3, 96)
  assert params['conv2']['kernel'].shape == (5, 5, 96, 256)
  assert params['full6']['kernel'].shape == (p5 * p5 * 512, 4096)
  assert params['full7']['kernel'].shape == (4096, 2048)
  assert params['head']['kernel'].shape == (2048, 101)


@pytest.mark.parametrize('name,num_lrn', [('cnn_m_2048', 2), ('cnn_m_2048_temporal', 1)])
def test_cnn_m_temporal_drops_second_lrn(name, num_lrn):
  model = models.build_model(name, 101)
  x = jax.ShapeDtypeStruct((1, 112, 112, 20), jnp.float32)
  _, state = jax.eval_shape(lambda inp: model.init_with_output(
      jax.random.key(0), inp, capture_intermediates=True,
      mutable=['params', 'intermediates']), x)
  lrns = [k for k in state['intermediates'] if k.startswith('LocalResponseNorm')]
  assert len(lrns) == num_lrn
  assert state['params']['conv1']['kernel'].shape == (7, 7, 20, 96)


@pytest.mark.parametrize('name,size', [('resnet18', 64), ('resnet50', 64), ('vgg16_bn', 32),
                                       ('cnn_m_2048', 112), ('tiny', 32)])
def test_smaller_inputs_and_any_channel_count(name, size):
  model = models.build_model(name, 7)
  x = jax.ShapeDtypeStruct((2, size, size, 20), jnp.float32)
  variables = jax.eval_shape(lambda inp: model.init(jax.random.key(0), inp, train=False), x)
  out = jax.eval_shape(lambda v, inp: model.apply(v, inp, train=False), variables, x)
  assert out.shape == (2, 7) and out.dtype == jnp.float32


def test_unknown_name_and_bad_options():
  with pytest.raises(ValueError, match='resnet18.*vgg16_bn'):
    models.build_model('resnet19', 10)
  with pytest.raises(ValueError, match='dtype'):
    models.build_model('tiny', 10, dtype='float16')
  with pytest.raises(ValueError, match='num_classes'):
    models.build_model('tiny', 0)
  with pytest.raises(ValueError, match='second_lrn|options'):
    models.build_model('resnet18', 10, second_lrn=False)


# ---------------------------------------------------------------------------------------------
# Heads, dtype, dropout and BatchNorm on the tiny net (runs for real).


def test_multi_task_heads_are_named_and_shaped():
  model = models.build_model('tiny', (101, 51))
  x = jnp.ones((3, 32, 32, 20))
  variables = _random_variables(model, x)
  assert {'head_0', 'head_1'} <= set(variables['params']) and 'head' not in variables['params']
  out = jax.jit(lambda v, inp: model.apply(v, inp, train=False))(variables, x)
  assert isinstance(out, tuple) and [o.shape for o in out] == [(3, 101), (3, 51)]
  single = _shapes('tiny', 101, 32, channels=20)
  assert 'head' in single['params'] and 'head_0' not in single['params']


@pytest.fixture(scope='module')
def tiny_setup():
  """A 10-class tiny net's variables and a [4, 32, 32, 3] input, initialised once."""
  x = _normal(1, (4, 32, 32, 3))
  model = models.build_model('tiny', 10)
  return x, _random_variables(model, x)


def test_bfloat16_compute_keeps_float32_params_and_logits(tiny_setup):
  x, variables = tiny_setup
  f32 = models.build_model('tiny', 10)
  bf16 = models.build_model('tiny', 10, dtype='bfloat16')
  bf_vars = jax.eval_shape(lambda inp: bf16.init(jax.random.key(0), inp, train=False), x)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(bf_vars))

  @jax.jit
  def run(inp):
    out32 = f32.apply(variables, inp, train=False)
    out16, updates = bf16.apply(variables, inp, train=True, mutable=['batch_stats'])
    return out32, out16, updates, bf16.apply(variables, inp, train=False)

  out32, out16, updates, out16_eval = run(x)
  assert out16.dtype == jnp.float32
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(updates))
  # bfloat16 keeps 8 mantissa bits: relative error about 2^-8 per op.
  np.testing.assert_allclose(out16_eval, out32, atol=0.05 * float(jnp.abs(out32).max()) + 1e-2)


def test_dropout_uses_dropout_rng_only_in_train_mode(tiny_setup):
  x, variables = tiny_setup
  model = models.build_model('tiny', 10, dropout_rate=0.5)
  run = jax.jit(lambda key: model.apply(variables, x, train=True, rngs={'dropout': key},
                                        mutable=['batch_stats'])[0])
  np.testing.assert_array_equal(run(jax.random.key(5)), run(jax.random.key(5)))
  assert not np.allclose(run(jax.random.key(5)), run(jax.random.key(6)))
  evaluate = jax.jit(lambda v: model.apply(v, x, train=False))
  np.testing.assert_array_equal(evaluate(variables), evaluate(variables))


def test_torch_batch_norm_train_update_uses_unbiased_variance():
  x = _normal(0, (2, 3, 4, 5)) * 3.0 + 1.0
  bn = layers.TorchBatchNorm()
  variables = bn.init(jax.random.key(0), x, train=False)
  y, updates = jax.jit(lambda v, inp: bn.apply(v, inp, train=True, mutable=['batch_stats']))(
      variables, x)
  xs = np.asarray(x, np.float64).reshape(-1, 5)
  mean, biased, unbiased = xs.mean(0), xs.var(0), xs.var(0, ddof=1)
  # torch: running = (1 - 0.1) * running + 0.1 * batch, with the unbiased batch variance.
  np.testing.assert_allclose(updates['batch_stats']['mean'], 0.1 * mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(updates['batch_stats']['var'], 0.9 + 0.1 * unbiased, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(y).reshape(-1, 5), (xs - mean) / np.sqrt(biased + 1e-5),
                             rtol=1e-4, atol=1e-5)
  y_eval = jax.jit(lambda v, inp: bn.apply(v, inp, train=False))(variables, x)
  np.testing.assert_allclose(y_eval, np.asarray(x) / np.sqrt(1 + 1e-5), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Layers against direct implementations of torch's definitions.


def test_local_response_norm_matches_definition():
  x = _normal(0, (2, 3, 3, 9)).astype(np.float64) * 10
  size, alpha, beta, k = 5, 5e-4, 0.75, 2.0
  expected = np.empty_like(x)
  for c in range(9):
    window = x[..., max(0, c - size // 2):min(9, c + (size - 1) // 2 + 1)]
    expected[..., c] = x[..., c] / (k + alpha / size * np.sum(window ** 2, axis=-1)) ** beta
  got = jax.jit(layers.LocalResponseNorm().apply)({}, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize('size', [2, 7, 13, 5])
def test_adaptive_avg_pool_uses_torch_windows(size):
  x = _normal(size, (2, size, size + 1, 3))
  out = 7
  expected = np.empty((2, out, out, 3))
  for i in range(out):
    h0, h1 = math.floor(i * size / out), math.ceil((i + 1) * size / out)
    for j in range(out):
      w0, w1 = math.floor(j * (size + 1) / out), math.ceil((j + 1) * (size + 1) / out)
      expected[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
  pool = jax.jit(layers.adaptive_avg_pool, static_argnums=1)
  np.testing.assert_allclose(pool(x, (out, out)), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(pool(x, (1, 1))[:, 0, 0], x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_max_pool_ceil_mode_matches_brute_force():
  x = _normal(0, (1, 26, 9, 2))
  got = np.asarray(jax.jit(layers.max_pool_ceil, static_argnums=(1, 2))(x, 3, 2))
  out_h, out_w = math.ceil((26 - 3) / 2) + 1, math.ceil((9 - 3) / 2) + 1
  assert got.shape == (1, out_h, out_w, 2) == (1, 13, 4, 2)
  for i in range(out_h):
    for j in range(out_w):
      window = x[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
      np.testing.assert_array_equal(got[0, i, j], window.max((0, 1)))


def test_core_modules_import_neither_tensorflow_nor_torch():
  code = ('import sys, twostream_jax.models, twostream_jax.models.pretrained, '
          'twostream_jax.models.torchvision_conversion; '
          'bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "torch", '
          '"torchvision")]; print(bad); sys.exit(1 if bad else 0)')
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=env, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
