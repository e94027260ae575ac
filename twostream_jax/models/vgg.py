"""VGG-16 and VGG-16-BN (Simonyan & Zisserman 2015) in torchvision's exact layout.

Module names mirror torchvision's state_dict keys with '.' written as '_' (`features_0`,
`features_1` for a BatchNorm, `classifier_0`, `classifier_3`); the last classifier layer is `head`
(or `head_0`, ... for several tasks) instead of torchvision's `classifier.6`.

One layout difference: features are flattened in NHWC order, so the rows of `classifier_0`'s kernel
are ordered (h, w, c) where torch's columns are (c, h, w); the converter permutes them.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from twostream_jax.models import layers
from twostream_jax.models import max_pool as max_pool_lib

Dtype = Any

# Output channels of each 3x3 convolution; 'M' is a 2x2/2 max pool (torchvision's config 'D').
VGG16_CONFIG: tuple[int | str, ...] = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M',
                                       512, 512, 512, 'M', 512, 512, 512, 'M')
VGG_POOLED_SIZE = (7, 7)
VGG_FC_WIDTH = 4096


def _vgg_linear_init() -> nn.initializers.Initializer:
  # torchvision initialises VGG's linear layers with N(0, 0.01).
  return nn.initializers.normal(0.01)


class VGG(nn.Module):
  """VGG-16 (optionally with BatchNorm after every convolution) on NHWC input.

  Attributes:
    num_classes: int (one head `head`) or tuple (heads `head_0`, `head_1`, ...).
    batch_norm: VGG-16-BN when True.
    dropout_rate: rate of the two classifier dropouts (torchvision uses 0.5).
    dtype: compute dtype; parameters (and batch statistics) stay float32.
  """
  num_classes: int | tuple[int, ...]
  batch_norm: bool = False
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | tuple[jax.Array, ...]:
    """Classifies images.

    Args:
      x: [B, H, W, C] float images, H, W >= 32 (five 2x2 poolings).
      train: batch statistics and dropout on (True) or off (False).

    Returns:
      float32 logits [B, num_classes], or a tuple of [B, n_k] for several heads.
    """
    x = x.astype(self.dtype)
    index = 0  # torchvision's position in nn.Sequential, which names the parameters.
    for item in VGG16_CONFIG:
      if item == 'M':
        if min(x.shape[1:3]) < 2:
          raise ValueError(f'VGG input of spatial size {x.shape[1:3]} is too small after pooling; '
                           'use images of at least 32x32.')
        x = max_pool_lib.max_pool(x, (2, 2), (2, 2))
        index += 1
        continue
      x = nn.Conv(int(item), (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                  param_dtype=jnp.float32, kernel_init=layers.conv_kernel_init,
                  name=f'features_{index}')(x)
      if self.batch_norm:
        x = layers.TorchBatchNorm(dtype=self.dtype, name=f'features_{index + 1}')(x, train)
      x = nn.relu(x)
      index += 3 if self.batch_norm else 2

    x = layers.adaptive_avg_pool(x, VGG_POOLED_SIZE).reshape(x.shape[0], -1)
    for name in ('classifier_0', 'classifier_3'):
      x = nn.Dense(VGG_FC_WIDTH, dtype=self.dtype, param_dtype=jnp.float32,
                   kernel_init=_vgg_linear_init(), name=name)(x)
      x = nn.relu(x)
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.apply_heads(x, self.num_classes, self.dtype)
