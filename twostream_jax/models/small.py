"""A small ConvNet for the CPU demo: four convolutions with BatchNorm and two max-pools.

Big enough to see a ~10-pixel texture period (receptive field ~50 px at the last conv), small enough
to train quickly on a few CPU cores at 96x96 (~0.14M parameters for 3 input channels).
Same interface and variable collections as the big models.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from twostream_jax.models import layers
from twostream_jax.models import max_pool as max_pool_lib
from twostream_jax.models import strided_conv

Dtype = Any

# (width, kernel, stride, max-pool after) per convolution.
SMALL_LAYERS = ((32, 5, 2, True), (64, 3, 1, True), (128, 3, 1, False), (128, 3, 1, False))


class SmallNet(nn.Module):
  """conv5x5/2 32, pool, conv3x3 64, pool, conv3x3 128, conv3x3 128 (each + BN + ReLU), global
  average pool, dropout, head(s).

  Attributes:
    num_classes: int (one head `head`) or tuple (heads `head_0`, `head_1`, ...).
    dropout_rate: dropout before the classifier.
    dtype: compute dtype; parameters and batch statistics stay float32.
  """
  num_classes: int | tuple[int, ...]
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | tuple[jax.Array, ...]:
    """Classifies `x` [B, H, W, C] (H, W >= 16); returns float32 logits [B, n] or a tuple."""
    x = x.astype(self.dtype)
    for i, (width, kernel, stride, pool) in enumerate(SMALL_LAYERS):
      pad = kernel // 2
      x = nn.Conv(width, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                  use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                  kernel_init=layers.conv_kernel_init,
                  conv_general_dilated=strided_conv.conv_general_dilated, name=f'conv{i + 1}')(x)
      x = layers.TorchBatchNorm(dtype=self.dtype, name=f'bn{i + 1}')(x, train)
      x = nn.relu(x)
      if pool:
        x = max_pool_lib.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.apply_heads(x, self.num_classes, self.dtype)
