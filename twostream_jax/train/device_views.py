"""Network inputs made on the accelerator from uint8 pixels: the view transform of the jitted steps.

The input pipeline hands the device uint8 images and a few numbers per example (`data.batch_keys`
documents each key); `make_views`, one pure JAX function inside the jitted train and eval steps,
turns them into float network inputs. Evaluation batches of videos carry each video's bank of
frames or planes once and the rows of its K positions (`video_positions` gathers them here), so
that the K x C views of a video are adjacent, position-major.

A view: the box is resized to S x S with TF's bilinear rule (half-pixel centres, no antialiasing;
an S x S box is copied exactly) and mirrored if flipped; RGB is scaled to [0, 1], colour-jittered
if asked and normalised (`data.protocol_views`); flow is dequantised, scaled with the resize, its
x negated when flipped, and each field's mean subtracted if asked (docs/ARCHITECTURE.md, "Flow
rules"). The TF host path it replaced is its reference in the tests
(`tests/data/tf_view_reference.py`). JAX only: no TensorFlow, no OpenCV.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from twostream_jax.data import protocol_views
from twostream_jax.data.batch_keys import BOXES, FLIPS, FLOW_STEP, IMAGES, JITTER, ROWS

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclasses.dataclass(frozen=True)
class ViewSpec:
  """The static settings of the view transform (from `config.data`).

  Attributes:
    modality: 'rgb' or 'flow'.
    crop_size: S, the network input side.
    normalization: RGB: 'imagenet' or 'unit'.
    mean_subtraction: flow: 'per_field' or 'none'.
  """
  modality: str
  crop_size: int
  normalization: str = 'imagenet'
  mean_subtraction: str = 'per_field'

  @classmethod
  def from_data_config(cls, data_config: Any) -> 'ViewSpec':
    """The spec of `config.data` (`data.modality`, `crop_size`, `normalization`, `flow_mean_subtraction`)."""
    spec = cls(modality=data_config.modality, crop_size=int(data_config.crop_size),
               normalization=data_config.normalization,
               mean_subtraction=data_config.flow_mean_subtraction)
    if spec.modality not in ('rgb', 'flow'):
      raise ValueError(f"data.modality must be 'rgb' or 'flow', got {spec.modality!r}")
    if spec.normalization not in protocol_views.NORMALIZATIONS:
      raise ValueError(f'data.normalization must be one of {protocol_views.NORMALIZATIONS}, got '
                       f'{spec.normalization!r}')
    if spec.mean_subtraction not in protocol_views.MEAN_SUBTRACTIONS:
      raise ValueError(f'data.flow_mean_subtraction must be one of '
                       f'{protocol_views.MEAN_SUBTRACTIONS}, got {spec.mean_subtraction!r}')
    return spec


def _source_positions(start: jax.Array, length: jax.Array, size: int,
                      flip: jax.Array | bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
  """TF's half-pixel bilinear sampling of `length` pixels from `start` onto `size` outputs.

  Returns:
    (lower, upper) int32 `[size]` canvas indices and the float32 weight `[size]` of `upper`.
  """
  scale = length.astype(jnp.float32) / size  # as TF: float(in) / out
  out = jnp.arange(size, dtype=jnp.float32)
  out = jnp.where(flip, size - 1 - out, out)  # a mirrored view samples the mirrored positions
  pos = (out + 0.5) * scale - 0.5
  floor = jnp.floor(pos)
  lower = jnp.maximum(floor, 0).astype(jnp.int32)
  upper = jnp.minimum(jnp.ceil(pos), length.astype(jnp.float32) - 1).astype(jnp.int32)
  return start + lower, start + upper, pos - floor


def crop_resize(image: jax.Array, box: jax.Array, flip: jax.Array, size: int,
                planes: bool = False) -> jax.Array:
  """One view of one canvas: the box resized to size x size (bilinear as TF), mirrored if flipped.

  Args:
    image: uint8 (or float) `[Hc, Wc, c]`, or `[c, Hc, Wc]` with `planes`.
    box: int32 `[4]` = (y0, x0, h, w) inside the canvas, or `[2]` = (y0, x0) of an S x S box.
    flip: bool scalar.
    size: S.
    planes: the image is channel-first.

  Returns:
    float32 `[S, S, c]` in the units of `image` (no rounding).
  """
  if box.shape[-1] == 2:  # an S x S box: a slice, mirrored if flipped
    c = image.shape[0] if planes else image.shape[-1]
    start = (0, box[0], box[1]) if planes else (box[0], box[1], 0)
    crop = jax.lax.dynamic_slice(image, start, (c, size, size) if planes else (size, size, c))
    crop = crop.astype(jnp.float32)
    crop = jnp.where(flip, jnp.flip(crop, axis=2 if planes else 1), crop)
    return jnp.moveaxis(crop, 0, -1) if planes else crop
  y_lo, y_hi, wy = _source_positions(box[0], box[2], size)
  x_lo, x_hi, wx = _source_positions(box[1], box[3], size, flip)
  if not planes:
    image = jnp.moveaxis(image, -1, 0)
  # Gather on the stored dtype (4x less traffic for uint8), interpolate in float32.
  top, bottom = image[:, y_lo], image[:, y_hi]  # [c, S, Wc]
  f = lambda rows, cols: rows[:, :, cols].astype(jnp.float32)  # [c, S, S]
  top = f(top, x_lo) + (f(top, x_hi) - f(top, x_lo)) * wx
  bottom = f(bottom, x_lo) + (f(bottom, x_hi) - f(bottom, x_lo)) * wx
  return jnp.moveaxis(top + (bottom - top) * wy[:, None], 0, -1)


def color_jitter(image: jax.Array, factors: jax.Array) -> jax.Array:
  """Brightness, contrast, saturation of float RGB `[H, W, 3]` in [0, 1] by `factors` `[3]`.

  As torchvision's ColorJitter with the three factors in fixed order, clipped after each.
  """
  gray = lambda x: x @ jnp.asarray(_GRAY_WEIGHTS, jnp.float32)
  image = jnp.clip(image * factors[0], 0.0, 1.0)
  mean = jnp.mean(gray(image))
  image = jnp.clip((image - mean) * factors[1] + mean, 0.0, 1.0)
  g = gray(image)[..., None]
  return jnp.clip(g + (image - g) * factors[2], 0.0, 1.0)


def rgb_view(spec: ViewSpec, image: jax.Array, box: jax.Array, flip: jax.Array,
             jitter: jax.Array | None = None) -> jax.Array:
  """One RGB network input: uint8 canvas `[Hc, Wc, 3]` -> float32 `[S, S, 3]`.

  x / 255 -> colour jitter (when `jitter`, float32 `[3]`, is given) -> ('imagenet') (x - mean) / std
  or ('unit') as is.
  """
  x = crop_resize(image, box, flip, spec.crop_size)
  if spec.normalization == 'imagenet':
    scale = 1.0 / jnp.asarray(protocol_views.IMAGENET_STD, jnp.float32)
    offset = -jnp.asarray(protocol_views.IMAGENET_MEAN, jnp.float32) * scale
  else:
    scale, offset = jnp.ones(3, jnp.float32), jnp.zeros(3, jnp.float32)
  if jitter is not None:
    x = color_jitter(x * (1.0 / 255.0), jitter)
  else:
    scale = scale / 255.0  # folds [0, 255] -> [0, 1] into the normalisation, as the host path
  return x * scale + offset


def flow_view(spec: ViewSpec, stack: jax.Array, box: jax.Array, flip: jax.Array,
              step: jax.Array) -> jax.Array:
  """One flow network input: uint8 planes `[2L, Hc, Wc]` -> float32 `[S, S, 2L]` in pixels of the input.

  v = (q - centre) * step * r * sign per channel: centre 127.5 ('none') or the channel's spatial
  mean of the resized q ('per_field': each field's mean vector, the paper's camera-motion
  compensation), r = S / w for x and S / h for y (flow scales with the resize), sign = -1 on the x
  channels of a flipped view.

  Args:
    spec: the view settings.
    stack: quantised flow planes, plane 2k = x and 2k + 1 = y of field k.
    box: int32 `[4]` (or `[2]`: S x S, see `crop_resize`).
    flip: bool scalar.
    step: float32 scalar, B / 127.5.
  """
  size = spec.crop_size
  q = crop_resize(stack, box, flip, size, planes=True)
  if box.shape[-1] == 2:  # no resize
    x_scale, y_scale = step * jnp.where(flip, -1.0, 1.0), step
  else:
    box_f = box.astype(jnp.float32)
    x_scale = size / box_f[3] * step * jnp.where(flip, -1.0, 1.0)
    y_scale = size / box_f[2] * step
  scale = jnp.tile(jnp.stack([x_scale, y_scale]), stack.shape[0] // 2)
  centre = jnp.mean(q, axis=(0, 1)) if spec.mean_subtraction == 'per_field' else 127.5
  return q * scale + (-centre * scale)


def video_positions(batch: Mapping[str, Any]) -> dict[str, Any]:
  """An evaluation batch of v videos (banks and rows) -> its v * K test positions (module docstring).

  Returns `images` `[v * K, Hc, Wc, 3]` (RGB) or `[v * K, 2L, Hc, Wc]` (flow), and every other key
  of the batch (boxes, flips, flow_step, label, mask, ...) repeated for each video's K positions;
  `rows` is consumed. A batch without `rows` (already positions) is returned as is. Works on JAX
  and numpy arrays (tests look at the positions on the host).
  """
  if ROWS not in batch:
    return dict(batch)
  rows = batch[ROWS]
  k = rows.shape[1]
  stacks = jax.vmap(lambda bank, r: bank[r])(batch[IMAGES], rows)  # [v, K, ...]
  out = {key: jnp.repeat(value, k, axis=0) for key, value in batch.items()
         if key not in (IMAGES, ROWS)}
  out[IMAGES] = stacks.reshape((-1,) + stacks.shape[2:])
  return out


def make_views(spec: ViewSpec, batch: Mapping[str, jax.Array], dtype: Any = jnp.float32) -> jax.Array:
  """The network inputs of a batch (module docstring): `[n * V, S, S, c]`, views of an example adjacent.

  Args:
    spec: the view settings.
    batch: `images`, `boxes`, `flips` and, for flow, `flow_step`; for RGB optionally `jitter`;
      evaluation batches of videos also `rows` (`video_positions`: n = v * K positions).
    dtype: output dtype (the cast happens last).
  """
  batch = video_positions(batch)
  images, boxes, flips = batch[IMAGES], batch[BOXES], batch[FLIPS]
  if spec.modality == 'rgb':
    jitter = batch.get(JITTER)
    if jitter is None:
      one = lambda im, b, f: rgb_view(spec, im, b, f)
      views = jax.vmap(jax.vmap(one, (None, 0, 0)))(images, boxes, flips)
    else:
      one = lambda im, b, f, j: rgb_view(spec, im, b, f, j)
      views = jax.vmap(jax.vmap(one, (None, 0, 0, None)))(images, boxes, flips, jitter)
  else:
    one = lambda im, b, f, s: flow_view(spec, im, b, f, s)
    views = jax.vmap(jax.vmap(one, (None, 0, 0, None)))(images, boxes, flips, batch[FLOW_STEP])
  return views.reshape((-1,) + views.shape[2:]).astype(dtype)


def num_views(batch: Mapping[str, Any]) -> int:
  """Views per batch element: V (boxes per example), times K for evaluation batches of videos."""
  views = int(batch[BOXES].shape[1])
  return views * int(batch[ROWS].shape[1]) if ROWS in batch else views


def per_view(values: Any, views: int) -> Any:
  """Repeats per-example values `[n, ...]` for each of their `views` views: `[n * views, ...]`.

  Works on numpy and JAX arrays alike (the order of `make_views`).
  """
  if views == 1:
    return values
  return values.repeat(views, axis=0)


def has_device_views(batch: Mapping[str, Any]) -> bool:
  """Whether a batch holds uint8 images for `make_views` (else float `inputs` made on the host)."""
  return IMAGES in batch


def batch_inputs(batch: dict[str, jax.Array],
                 view_spec: ViewSpec | None) -> jax.Array:
  """The network inputs `[B * V, S, S, C]` of a batch: made from its uint8 images, or its `inputs`."""
  if has_device_views(batch):
    if view_spec is None:
      raise ValueError('a batch of uint8 images needs a device_views.ViewSpec (make_jitted_steps '
                       'builds it from config.data)')
    return make_views(view_spec, batch)
  return batch['inputs']
