"""Layers shared by the model zoo: torch-compatible BatchNorm, LRN, pooling and classifier heads.

Everything here works on NHWC arrays (`[B, H, W, C]`), the layout XLA prefers on every backend.
Where a layer mirrors a PyTorch layer, it reproduces torch's arithmetic exactly so that converted
torchvision weights give the same outputs (see `twostream_jax.models.torchvision_conversion`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from twostream_jax.models import max_pool as max_pool_lib
from twostream_jax.models.batch_norm_train import batch_norm_train

Dtype = Any

# torch.nn.Conv2d / BatchNorm2d defaults used by torchvision.
TORCH_BN_EPSILON = 1e-5
# torch momentum 0.1 weights the *new* batch statistic; flax-style momentum weights the old value.
TORCH_BN_MOMENTUM = 0.9

# torchvision's kaiming_normal_(mode='fan_out', nonlinearity='relu') for convolutions.
conv_kernel_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def torch_linear_init() -> tuple[nn.initializers.Initializer, nn.initializers.Initializer]:
  """Returns (kernel_init, bias_init) close to torch.nn.Linear's default U(+-1/sqrt(fan_in)).

  Flax Dense kernels are [in, out], so fan_in is shape[0]. The bias starts at zero.
  """

  def kernel_init(key: jax.Array, shape: Sequence[int], dtype: Dtype = jnp.float32) -> jax.Array:
    bound = 1.0 / math.sqrt(shape[0])
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return kernel_init, nn.initializers.zeros


class TorchBatchNorm(nn.Module):
  """BatchNorm over the last axis with torch.nn.BatchNorm2d's exact train-mode semantics.

  Normalises with the biased batch variance (as torch does) but updates the running variance with
  the *unbiased* one, `var * n / (n - 1)`, which flax.linen.BatchNorm does not. Statistics are
  computed in float32 whatever the compute dtype. Under `jax.jit` with a sharded batch the means are
  global (XLA inserts the cross-device reductions), so no axis name is needed.

  Variables: params `scale` [C], `bias` [C]; batch_stats `mean` [C], `var` [C].

  Attributes:
    momentum: weight of the old running value (torch momentum m corresponds to 1 - m).
    epsilon: added to the variance before the square root.
    dtype: compute dtype of the output.
    scale_init: initialiser of `scale` (zeros lets a residual branch start as identity).
  """
  momentum: float = TORCH_BN_MOMENTUM
  epsilon: float = TORCH_BN_EPSILON
  dtype: Dtype = jnp.float32
  scale_init: nn.initializers.Initializer = nn.initializers.ones

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """Normalises `x` [..., C]; in train mode also updates the running statistics."""
    channels = x.shape[-1]
    scale = self.param('scale', self.scale_init, (channels,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (channels,), jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, (channels,), jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, (channels,), jnp.float32)

    x32 = x.astype(jnp.float32)
    if train:
      # Two-pass variance, as torch computes it; see batch_norm_train for the backward pass.
      y, mean, var = batch_norm_train(x32, scale, bias, self.epsilon)
      if not self.is_initializing():
        n = math.prod(x.shape[:-1])
        unbiased_var = var * (n / max(n - 1, 1))
        ra_mean.value = self.momentum * ra_mean.value + (1.0 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * unbiased_var
      return y.astype(self.dtype)

    # Subtract the mean before scaling, as torch does: folding it into the bias (x * m + b') loses
    # precision by cancellation when |mean| >> std, which deep random-weight nets reach.
    mul = scale * jax.lax.rsqrt(ra_var.value + self.epsilon)
    y = (x32 - ra_mean.value) * mul + bias
    return y.astype(self.dtype)


class LocalResponseNorm(nn.Module):
  """Cross-channel local response normalisation (Krizhevsky et al. 2012), as torch/Caffe define it.

  `b_c = a_c / (k + alpha / size * sum_{c' in window(c)} a_c'^2) ** beta`, the window being `size`
  channels centred on c, zero-padded at the ends (torch pads size // 2 before and (size - 1) // 2
  after). Defaults are those of the CNN-M models (Chatfield et al. 2014): size 5, alpha 5e-4,
  beta 0.75, k 2.
  """
  size: int = 5
  alpha: float = 5e-4
  beta: float = 0.75
  k: float = 2.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalises `x` [B, H, W, C] across C; returns the same shape and dtype."""
    sq = jnp.square(x.astype(jnp.float32))
    window_sum = jax.lax.reduce_window(
        sq, 0.0, jax.lax.add,
        window_dimensions=(1,) * (x.ndim - 1) + (self.size,),
        window_strides=(1,) * x.ndim,
        padding=((0, 0),) * (x.ndim - 1) + ((self.size // 2, (self.size - 1) // 2),))
    denom = jnp.power(self.k + (self.alpha / self.size) * window_sum, self.beta)
    return (x.astype(jnp.float32) / denom).astype(x.dtype)


def max_pool_ceil(x: jax.Array, window: int, stride: int) -> jax.Array:
  """Max pooling with Caffe's / torch's `ceil_mode=True` output size and no padding.

  Output size is `ceil((H - window) / stride) + 1`; the last window may hang over the bottom/right
  edge and only sees real pixels (the overhang is padded with -inf), as in the original CNN-M.

  Args:
    x: [B, H, W, C].
    window: square window size.
    stride: stride in both spatial dimensions.

  Returns:
    [B, H', W', C].
  """
  pads = []
  for size in x.shape[1:3]:
    if size < window:
      raise ValueError(f'Input of spatial size {x.shape[1:3]} is too small for a {window}x{window} '
                       'max pool; use a larger input image.')
    out = -(-(size - window) // stride) + 1
    pads.append((0, (out - 1) * stride + window - size))
  return max_pool_lib.max_pool(x, (window, window), (stride, stride), pads)


def _adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out, in] averaging weights of torch's adaptive_avg_pool over one axis.

  Output cell i averages inputs floor(i * in / out) .. ceil((i + 1) * in / out) - 1, exactly the
  windows torch uses, so windows may overlap or repeat (e.g. a 2x2 map pooled to 7x7).
  """
  mat = np.zeros((out_size, in_size), np.float32)
  for i in range(out_size):
    start = (i * in_size) // out_size
    end = -(-((i + 1) * in_size) // out_size)
    mat[i, start:end] = 1.0 / (end - start)
  return mat


def adaptive_avg_pool(x: jax.Array, output_size: tuple[int, int]) -> jax.Array:
  """torch.nn.AdaptiveAvgPool2d on NHWC input.

  Args:
    x: [B, H, W, C].
    output_size: (H', W').

  Returns:
    [B, H', W', C] in x's dtype.
  """
  out_h, out_w = output_size
  if x.shape[1:3] == (out_h, out_w):
    return x  # torch's windows are then single pixels: identity.
  if (out_h, out_w) == (1, 1):
    return jnp.mean(x, axis=(1, 2), keepdims=True)
  ph = jnp.asarray(_adaptive_pool_matrix(x.shape[1], out_h), x.dtype)
  pw = jnp.asarray(_adaptive_pool_matrix(x.shape[2], out_w), x.dtype)
  return jnp.einsum('ih,bhwc,jw->bijc', ph, x, pw)


def apply_heads(features: jax.Array, num_classes: int | tuple[int, ...],
                dtype: Dtype) -> jax.Array | tuple[jax.Array, ...]:
  """Applies the classifier head(s) as children of the calling model.

  Must be called from the calling model's compact `__call__`, so that the heads become its direct
  children (Flax binds modules created there to the enclosing module).

  Args:
    features: [B, D].
    num_classes: an int for one head named `head`, or a tuple for heads `head_0`, `head_1`, ...
    dtype: compute dtype of the heads.

  Returns:
    float32 logits [B, num_classes], or a tuple of [B, n_k].
  """
  kernel_init, bias_init = torch_linear_init()

  def head(n: int, name: str) -> jax.Array:
    dense = nn.Dense(n, dtype=dtype, param_dtype=jnp.float32, kernel_init=kernel_init,
                     bias_init=bias_init, name=name)
    return dense(features).astype(jnp.float32)

  if isinstance(num_classes, int):
    return head(num_classes, 'head')
  return tuple(head(n, f'head_{i}') for i, n in enumerate(num_classes))


def canonical_num_classes(num_classes: Any) -> int | tuple[int, ...]:
  """Validates num_classes: a positive int, or a non-empty sequence of them (multi-task)."""
  if isinstance(num_classes, (int, np.integer)) and not isinstance(num_classes, bool):
    if num_classes < 1:
      raise ValueError(f'num_classes must be >= 1, got {num_classes}.')
    return int(num_classes)
  if isinstance(num_classes, (tuple, list)) and num_classes:
    return tuple(canonical_num_classes(n) for n in num_classes)
  raise ValueError(f'num_classes must be a positive int or a non-empty tuple of them (one per '
                   f'task), got {num_classes!r}.')


def canonical_dtype(dtype: Any) -> Dtype:
  """Maps 'float32' / 'bfloat16' (or the jnp dtypes) to the jnp dtype; anything else is an error."""
  names = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
  if isinstance(dtype, str):
    if dtype not in names:
      raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}.")
    return names[dtype]
  if jnp.dtype(dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
    return jnp.dtype(dtype).type
  raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}.")
