"""The CPU formulations of batch norm, max pooling and strided convolutions: same values and
gradients as XLA's autodiff of the plain operations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from twostream_jax.models import max_pool
from twostream_jax.models import strided_conv
from twostream_jax.models.batch_norm_train import batch_norm_train
from twostream_jax.models.channel_sums import channel_sums

NHWC = ('NHWC', 'HWIO', 'NHWC')


def _normal(seed, shape, scale=1.0, shift=0.0):
  return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(np.float32)


def test_channel_sums_equal_sums():
  x = _normal(0, (300, 5))
  np.testing.assert_allclose(np.asarray(jax.jit(channel_sums)(x)), x.sum(0), rtol=1e-5, atol=1e-4)


def _reference_batch_norm(x, scale, bias, epsilon):
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axis=axes)
  var = jnp.mean(jnp.square(x - mean), axis=axes)
  return (x - mean) * (scale * lax.rsqrt(var + epsilon)) + bias, mean, var


def test_batch_norm_values_and_gradients_equal_autodiff():
  # An offset mean and every output used, the statistics too (their cotangents reach x).
  x, scale, bias = _normal(1, (3, 5, 4, 6), 2.0, 3.0), _normal(2, (6,)), _normal(3, (6,))
  weights = _normal(4, (3, 5, 4, 6)), _normal(5, (6,)), _normal(6, (6,))

  def objective(fn):
    def value(x, scale, bias):
      y, mean, var = fn(x, scale, bias, 1e-5)
      return (jnp.sum(jnp.sin(y) * weights[0]) + jnp.sum(mean * weights[1])
              + jnp.sum(var * weights[2]))
    return value

  for got, want in zip(jax.jit(lambda *a: batch_norm_train(*a, 1e-5))(x, scale, bias),
                       _reference_batch_norm(x, scale, bias, 1e-5)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
  got = jax.jit(jax.grad(objective(batch_norm_train), (0, 1, 2)))(x, scale, bias)
  want = jax.grad(objective(_reference_batch_norm), (0, 1, 2))(x, scale, bias)
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4,
                               atol=1e-5 * np.abs(np.asarray(w)).max())


@pytest.mark.parametrize('shape,window,strides,padding', [
    ((2, 11, 9, 3), (3, 3), (2, 2), ((1, 1), (1, 1))),  # ResNet's stem pool, odd sizes
    ((2, 13, 12, 3), (3, 3), (2, 2), ((0, 0), (0, 1))),  # a ceil-mode overhang (CNN-M)
    ((1, 8, 8, 2), (2, 2), (2, 2), ((0, 0), (0, 0))),  # VGG's
    ((1, 7, 10, 2), (3, 2), (1, 3), ((1, 0), (2, 1))),  # uneven everything
])
def test_max_pool_gradient_equals_xla_with_ties(shape, window, strides, padding):
  # Small integers make ties common and every sum exact, so the gradients must be equal: the first
  # maximal tap of each window (row-major) takes the gradient, as in XLA's and torch's.
  x = np.random.default_rng(7).integers(0, 3, shape).astype(np.float32)

  def plain(v):
    return lax.reduce_window(v, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1),
                             ((0, 0), *padding, (0, 0)))

  pooled = plain(x)
  cotangent = np.random.default_rng(8).integers(-4, 5, pooled.shape).astype(np.float32)
  got_y, got_vjp = jax.vjp(lambda v: max_pool.max_pool(v, window, strides, padding), x)
  want_vjp = jax.vjp(plain, x)[1]
  np.testing.assert_array_equal(np.asarray(got_y), np.asarray(pooled))
  got = jax.jit(lambda g: got_vjp(g)[0])(cotangent)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want_vjp(cotangent)[0]))
  assert np.count_nonzero(np.asarray(got)) > 0


@pytest.mark.parametrize('shape,kernel,stride,pad', [
    ((2, 15, 15, 3), 7, 2, 3),  # ResNet's conv1
    ((2, 14, 13, 4), 3, 2, 1),  # a ResNet stage's first 3x3
    ((2, 14, 14, 4), 1, 2, 0),  # its 1x1 downsample
    ((2, 23, 23, 3), 7, 2, 0),  # CNN-M's conv1
    ((2, 12, 11, 4), 5, 2, 1),  # CNN-M's conv2
    ((1, 10, 10, 2), 3, 3, 1),  # stride 3
])
def test_strided_conv_gradients_equal_autodiff(shape, kernel, stride, pad):
  x = _normal(9, shape)
  w = _normal(10, (kernel, kernel, shape[-1], 5))
  pads = ((pad, pad), (pad, pad))

  def plain(x, w):
    return lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=NHWC)

  def ours(x, w):
    return strided_conv.conv_general_dilated(x, w, (stride, stride), pads,
                                             dimension_numbers=NHWC)

  y = plain(x, w)
  cotangent = _normal(11, y.shape)
  np.testing.assert_allclose(np.asarray(jax.jit(ours)(x, w)), np.asarray(y), rtol=1e-5, atol=1e-5)
  got = jax.jit(lambda x, w: jax.vjp(ours, x, w)[1](cotangent))(x, w)
  want = jax.vjp(plain, x, w)[1](cotangent)
  for g, wt in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(wt), rtol=1e-5,
                               atol=1e-5 * np.abs(np.asarray(wt)).max())


def test_flax_conv_with_strided_conv_keeps_parameters_and_outputs():
  x = _normal(12, (2, 9, 9, 3))
  plain = nn.Conv(4, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
  ours = nn.Conv(4, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                 conv_general_dilated=strided_conv.conv_general_dilated)
  variables = plain.init(jax.random.key(0), x)
  assert jax.tree.structure(ours.init(jax.random.key(0), x)) == jax.tree.structure(variables)
  np.testing.assert_allclose(np.asarray(ours.apply(variables, x)),
                             np.asarray(plain.apply(variables, x)), rtol=1e-5, atol=1e-5)
  # What the phase split does not cover goes to lax unchanged: 'SAME' padding, dilation.
  same = strided_conv.conv_general_dilated(x, np.ones((3, 3, 3, 2), np.float32), (2, 2), 'SAME',
                                           dimension_numbers=NHWC)
  dilated = strided_conv.conv_general_dilated(x, np.ones((3, 3, 3, 2), np.float32), (2, 2),
                                              ((2, 2), (2, 2)), rhs_dilation=(2, 2),
                                              dimension_numbers=NHWC)
  assert same.shape == (2, 5, 5, 2) and dilated.shape == (2, 5, 5, 2)
