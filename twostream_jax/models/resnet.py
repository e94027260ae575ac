"""ResNet-18/34/50/101/152 in torchvision's exact layout (He et al. 2016; v1.5 bottleneck).

Module names mirror torchvision's state_dict keys with '.' written as '_' (`layer1_0/conv1`,
`layer2_0/downsample_0`, ...), except the classifier, which is `head` (or `head_0`, `head_1`, ...
for several tasks) instead of torchvision's `fc`. Padding is explicit and equal to torch's, so converted
weights give torch's outputs to float32 rounding.
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

# Blocks per stage for each depth, and whether the depth uses bottleneck blocks.
RESNET_SPECS: dict[int, tuple[tuple[int, int, int, int], bool]] = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}
STAGE_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


def _conv(features: int, kernel: int, stride: int, dtype: Dtype, name: str) -> nn.Conv:
  """A bias-free convolution padded as torch pads it (kernel // 2 on every side)."""
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=False, dtype=dtype,
                 param_dtype=jnp.float32, kernel_init=layers.conv_kernel_init,
                 conv_general_dilated=strided_conv.conv_general_dilated, name=name)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""
  width: int
  stride: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """[B, H, W, C_in] -> [B, H / stride, W / stride, width]."""
    y = _conv(self.width, 3, self.stride, self.dtype, 'conv1')(x)
    y = nn.relu(layers.TorchBatchNorm(dtype=self.dtype, name='bn1')(y, train))
    y = _conv(self.width, 3, 1, self.dtype, 'conv2')(y)
    y = layers.TorchBatchNorm(dtype=self.dtype, name='bn2')(y, train)
    if self.stride != 1 or x.shape[-1] != self.width:
      x = _conv(self.width, 1, self.stride, self.dtype, 'downsample_0')(x)
      x = layers.TorchBatchNorm(dtype=self.dtype, name='downsample_1')(x, train)
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (carrying the stride, as torchvision's v1.5), 1x1 expand, plus residual."""
  width: int
  stride: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """[B, H, W, C_in] -> [B, H / stride, W / stride, 4 * width]."""
    out_channels = self.width * BOTTLENECK_EXPANSION
    y = _conv(self.width, 1, 1, self.dtype, 'conv1')(x)
    y = nn.relu(layers.TorchBatchNorm(dtype=self.dtype, name='bn1')(y, train))
    y = _conv(self.width, 3, self.stride, self.dtype, 'conv2')(y)
    y = nn.relu(layers.TorchBatchNorm(dtype=self.dtype, name='bn2')(y, train))
    y = _conv(out_channels, 1, 1, self.dtype, 'conv3')(y)
    y = layers.TorchBatchNorm(dtype=self.dtype, name='bn3')(y, train)
    if self.stride != 1 or x.shape[-1] != out_channels:
      x = _conv(out_channels, 1, self.stride, self.dtype, 'downsample_0')(x)
      x = layers.TorchBatchNorm(dtype=self.dtype, name='downsample_1')(x, train)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """torchvision's ResNet on NHWC input with any number of input channels.

  Attributes:
    depth: 18, 34, 50, 101 or 152.
    num_classes: int (one head `head`) or tuple (heads `head_0`, `head_1`, ...).
    dropout_rate: dropout before the classifier (torchvision has none; 0 reproduces it).
    dtype: compute dtype; parameters and batch statistics stay float32.
  """
  depth: int
  num_classes: int | tuple[int, ...]
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | tuple[jax.Array, ...]:
    """Classifies images.

    Args:
      x: [B, H, W, C] float images (H, W >= 32 so that every stage has at least one pixel).
      train: batch statistics and dropout on (True) or running statistics (False).

    Returns:
      float32 logits [B, num_classes], or a tuple of [B, n_k] for several heads.
    """
    blocks_per_stage, bottleneck = RESNET_SPECS[self.depth]
    block_cls: type[nn.Module] = Bottleneck if bottleneck else BasicBlock
    x = x.astype(self.dtype)
    x = _conv(64, 7, 2, self.dtype, 'conv1')(x)
    x = nn.relu(layers.TorchBatchNorm(dtype=self.dtype, name='bn1')(x, train))
    x = max_pool_lib.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
    for stage, (num_blocks, width) in enumerate(zip(blocks_per_stage, STAGE_WIDTHS)):
      for block in range(num_blocks):
        stride = 2 if stage > 0 and block == 0 else 1
        x = block_cls(width, stride, dtype=self.dtype,
                      name=f'layer{stage + 1}_{block}')(x, train)
    x = layers.adaptive_avg_pool(x, (1, 1)).reshape(x.shape[0], -1)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.apply_heads(x, self.num_classes, self.dtype)
