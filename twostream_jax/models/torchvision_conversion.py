"""Exact conversion of torchvision ResNet / VGG-16 state dicts to this package's Flax variables.

The Flax models name their modules after torchvision's state_dict keys with '.' written as '_':

    params/layer1_0/conv1/kernel [kh, kw, in, out]  <-  layer1.0.conv1.weight [out, in, kh, kw]
    params/bn1/scale, bias                          <-  bn1.weight, bn1.bias
    batch_stats/bn1/mean, var                       <-  bn1.running_mean, bn1.running_var
    params/head/kernel [in, out]                    <-  fc.weight (ResNet), classifier.6.weight (VGG)

Torch is imported only inside the functions that read .pth files or download weights. Converted
models expect torchvision's preprocessing: RGB in [0, 1], minus IMAGENET_RGB_MEAN, divided by
IMAGENET_RGB_STD. VGG's flattening and BatchNorm details: docs/design_notes.md.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from twostream_jax import models
from twostream_jax.models import layers
from twostream_jax.models import pretrained
from twostream_jax.models.vgg import VGG_POOLED_SIZE

SUPPORTED_ARCHS: tuple[str, ...] = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152',
                                    'vgg16', 'vgg16_bn')
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)
# Input size at which the templates are traced; VGG's classifier width depends on it.
_TEMPLATE_SIZE = 224
_LEAF_TO_TORCH = {'kernel': 'weight', 'bias': 'bias', 'scale': 'weight', 'mean': 'running_mean',
                  'var': 'running_var'}


def _check_arch(arch: str) -> None:
  if arch not in SUPPORTED_ARCHS:
    raise ValueError(f'Unknown torchvision architecture {arch!r}; supported: '
                     f'{", ".join(SUPPORTED_ARCHS)}.')


def head_torch_name(arch: str) -> str:
  """torchvision's module name of the classifier layer ('fc' or 'classifier.6')."""
  _check_arch(arch)
  return 'fc' if arch.startswith('resnet') else 'classifier.6'


def first_conv_torch_name(arch: str) -> str:
  """torchvision's module name of the first convolution ('conv1' or 'features.0')."""
  _check_arch(arch)
  return 'conv1' if arch.startswith('resnet') else 'features.0'


def torch_key(arch: str, flax_path: tuple[str, ...]) -> str:
  """The torchvision state_dict key of a Flax leaf.

  Args:
    arch: one of SUPPORTED_ARCHS.
    flax_path: (collection, module, ..., leaf), e.g. ('params', 'layer1_0', 'conv1', 'kernel').

  Returns:
    e.g. 'layer1.0.conv1.weight'.
  """
  *modules, leaf = flax_path[1:]
  if modules == ['head']:
    return f'{head_torch_name(arch)}.{_LEAF_TO_TORCH[leaf]}'
  torch_modules = [re.sub(r'_(\d+)$', r'.\1', m) for m in modules]
  return '.'.join(torch_modules + [_LEAF_TO_TORCH[leaf]])


def _is_vgg_first_fc(arch: str, flax_path: tuple[str, ...]) -> bool:
  return arch.startswith('vgg') and flax_path[1] == 'classifier_0' and flax_path[-1] == 'kernel'


def _torch_shape(flax_shape: tuple[int, ...]) -> tuple[int, ...]:
  """Shape of the torch tensor that becomes a Flax leaf of `flax_shape`."""
  if len(flax_shape) == 4:  # conv [kh, kw, in, out] <- [out, in, kh, kw]
    return (flax_shape[3], flax_shape[2], flax_shape[0], flax_shape[1])
  if len(flax_shape) == 2:  # dense [in, out] <- [out, in]
    return (flax_shape[1], flax_shape[0])
  return tuple(flax_shape)


def _to_flax(arch: str, flax_path: tuple[str, ...], value: np.ndarray,
             pooled_hw: tuple[int, int]) -> np.ndarray:
  """Rearranges one torch tensor into the Flax layout."""
  value = np.asarray(value, np.float32)
  if value.ndim == 4:
    return np.ascontiguousarray(value.transpose(2, 3, 1, 0))
  if value.ndim == 2:
    if _is_vgg_first_fc(arch, flax_path):
      # torch flattens [C, H, W]; the Flax model flattens [H, W, C].
      out_features = value.shape[0]
      value = value.reshape(out_features, -1, *pooled_hw).transpose(2, 3, 1, 0)
      return np.ascontiguousarray(value.reshape(-1, out_features))
    return np.ascontiguousarray(value.T)
  return value


def _template(arch: str, num_classes: int | tuple[int, ...],
              input_channels: int) -> dict[tuple[str, ...], jax.ShapeDtypeStruct]:
  """Flattened variable shapes of the Flax model, without allocating anything."""
  model = models.build_model(arch, num_classes)
  x = jax.ShapeDtypeStruct((1, _TEMPLATE_SIZE, _TEMPLATE_SIZE, input_channels), jnp.float32)
  shapes = jax.eval_shape(lambda inp: model.init(jax.random.key(0), inp, train=False), x)
  flat = {}
  for collection, tree in shapes.items():
    for path, leaf in traverse_util.flatten_dict(tree).items():
      flat[(collection,) + tuple(path)] = leaf
  return flat


def _require_key(state_dict: Mapping[str, Any], key: str, arch: str) -> np.ndarray:
  if key not in state_dict:
    raise ValueError(f'The state dict does not fit torchvision {arch}: it has no key {key!r} '
                     f'(its first keys: {list(state_dict)[:4]}). Check --arch.')
  return np.asarray(state_dict[key])


def cross_modality_kernel(kernel: np.ndarray, input_channels: int) -> np.ndarray:
  """TSN's cross-modality initialisation of a first convolution for another input type.

  Averages the filters over the input-channel axis and replicates the mean to every new channel
  (Wang et al. 2016, "Temporal Segment Networks"), e.g. RGB filters -> 2L flow channels.

  Args:
    kernel: [kh, kw, C_in, C_out] Flax kernel (e.g. C_in = 3).
    input_channels: new C_in (e.g. 2L = 20).

  Returns:
    [kh, kw, input_channels, C_out], every input channel equal to the mean over the old ones.
  """
  mean = np.mean(np.asarray(kernel, np.float32), axis=2, keepdims=True)
  return np.repeat(mean, input_channels, axis=2)


def convert_state_dict(arch: str, state_dict: Mapping[str, Any], *,
                       num_classes: int | tuple[int, ...] | None = None,
                       input_channels: int | None = None,
                       seed: int = 0) -> tuple[dict[str, Any], list[str]]:
  """Maps a torchvision state dict to Flax variables for `models.build_model(arch, ...)`.

  Args:
    arch: one of SUPPORTED_ARCHS.
    state_dict: torchvision key -> array (numpy, or anything np.asarray accepts); torch's
      `num_batches_tracked` counters are ignored.
    num_classes: classes of the converted head; None keeps the state dict's head. Another value
      (or a tuple, for multi-task heads) replaces the head by a fresh one initialised with `seed`.
    input_channels: channels of the converted first convolution; None keeps the state dict's
      (3). Another value applies the cross-modality initialisation (`cross_modality_kernel`).
    seed: PRNG seed of a replaced head.

  Returns:
    ({'params': ..., 'batch_stats': ...} as nested dicts of float32 numpy arrays, notes): notes
    say which parts were replaced or re-initialised.

  Raises:
    ValueError: unknown arch, or a state dict that does not fit it (the message names the first
      mismatching key and both shapes, or the first missing / unexpected key).
  """
  _check_arch(arch)
  head_name = head_torch_name(arch)
  file_classes = int(_require_key(state_dict, f'{head_name}.weight', arch).shape[0])
  file_channels = int(_require_key(state_dict, f'{first_conv_torch_name(arch)}.weight',
                                   arch).shape[1])
  template = _template(arch, file_classes, file_channels)
  expected = {torch_key(arch, path): path for path in template}

  for key, value in state_dict.items():
    if key.endswith('num_batches_tracked'):
      continue
    if key not in expected:
      raise ValueError(f'The state dict does not fit torchvision {arch}: unexpected key {key!r} '
                       f'(shape {tuple(np.shape(value))}). Check --arch.')
    want = _torch_shape(template[expected[key]].shape)
    if tuple(np.shape(value)) != want:
      raise ValueError(f'The state dict does not fit torchvision {arch}: key {key!r} has shape '
                       f'{tuple(np.shape(value))} in the file but {arch} expects {want}. '
                       'Check --arch.')
  missing = [key for key in expected if key not in state_dict]
  if missing:
    raise ValueError(f'The state dict does not fit torchvision {arch}: key {missing[0]!r} '
                     f'(shape {_torch_shape(template[expected[missing[0]]].shape)}) is missing '
                     f'({len(missing)} missing in all). Check --arch.')

  flat = {path: _to_flax(arch, path, state_dict[key], VGG_POOLED_SIZE)
          for key, path in expected.items()}
  notes = []

  first_conv = ('params', 'conv1' if arch.startswith('resnet') else 'features_0', 'kernel')
  if input_channels is not None and input_channels != file_channels:
    flat[first_conv] = cross_modality_kernel(flat[first_conv], input_channels)
    notes.append(f'{"/".join(first_conv)}: cross-modality init, mean of the {file_channels} '
                 f'input-channel filters replicated to {input_channels} channels')

  out_classes: int | tuple[int, ...] = file_classes
  if num_classes is not None:
    out_classes = layers.canonical_num_classes(num_classes)
  if out_classes != file_classes:
    features = flat.pop(('params', 'head', 'kernel')).shape[0]
    del flat[('params', 'head', 'bias')]
    kernel_init, bias_init = layers.torch_linear_init()
    multi = isinstance(out_classes, tuple)
    sizes = out_classes if multi else (out_classes,)
    keys = jax.random.split(jax.random.key(seed), len(sizes))
    for i, (n, key) in enumerate(zip(sizes, keys)):
      name = f'head_{i}' if multi else 'head'
      flat[('params', name, 'kernel')] = np.asarray(kernel_init(key, (features, n)))
      flat[('params', name, 'bias')] = np.asarray(bias_init(key, (n,)))
      notes.append(f'params/{name}: new {n}-class head (seed {seed}) replaces the '
                   f'{file_classes}-class one')

  # The result must be exactly what the target model initialises: catches mapping mistakes.
  target = _template(arch, out_classes, input_channels or file_channels)
  bad = [p for p in target if p not in flat or tuple(flat[p].shape) != tuple(target[p].shape)]
  if bad or len(target) != len(flat):
    raise AssertionError(f'Internal conversion error for {arch}: {bad[:3]} do not fit the model.')

  variables: dict[str, Any] = {'params': {}, 'batch_stats': {}}
  for collection in variables:
    sub = {p[1:]: v for p, v in flat.items() if p[0] == collection}
    variables[collection] = traverse_util.unflatten_dict(sub) if sub else {}
  return variables, notes


def load_torch_state_dict(weights: str, arch: str) -> tuple[dict[str, np.ndarray], str]:
  """Reads a state dict as numpy arrays from a .pth file or from torchvision's download.

  Args:
    weights: path to a .pth state_dict (loaded with `weights_only=True`), or 'imagenet' for
      torchvision's default ImageNet weights of `arch`, or 'imagenet:NAME' for a named set
      (e.g. 'imagenet:IMAGENET1K_V1').
    arch: one of SUPPORTED_ARCHS.

  Returns:
    (state dict of float32 numpy arrays, a description of the source).

  Raises:
    ValueError, FileNotFoundError, RuntimeError: with a message saying what to do.
  """
  _check_arch(arch)
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise RuntimeError('Converting torchvision weights needs torch and torchvision: '
                       'pip install "twostream_jax[convert]".') from e

  if weights == 'imagenet' or weights.startswith('imagenet:'):
    from torchvision import models as tv_models  # pylint: disable=g-import-not-at-top
    enum = tv_models.get_model_weights(arch)
    name = weights.partition(':')[2] or 'DEFAULT'
    try:
      chosen = enum[name]
    except KeyError as e:
      raise ValueError(f'torchvision has no weights {name!r} for {arch}; available: '
                       f'{", ".join(w.name for w in enum)}.') from e
    try:
      raw = chosen.get_state_dict(progress=True)
    except Exception as e:  # pylint: disable=broad-except
      raise RuntimeError(
          f'Could not download torchvision weights {chosen} from {chosen.url}: {e}. On a machine '
          'with internet access download that file, then pass --weights=/path/to/it.pth.') from e
    source = f'torchvision {chosen} ({chosen.url})'
  else:
    import os  # pylint: disable=g-import-not-at-top
    if not os.path.isfile(weights):
      raise FileNotFoundError(f'Weights file {weights!r} not found. Pass a .pth state_dict saved '
                              "with torch.save(model.state_dict(), path), or 'imagenet'.")
    try:
      raw = torch.load(weights, map_location='cpu', weights_only=True)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(
          f'Could not load {weights!r} with torch.load(weights_only=True): {e}. Save the '
          'state dict only: torch.save(model.state_dict(), path).') from e
    source = f'file {os.path.abspath(weights)}'

  # Accept training checkpoints that wrap the state dict, and DataParallel's 'module.' prefix.
  if isinstance(raw, Mapping):
    for wrapper in ('state_dict', 'model'):
      if wrapper in raw and isinstance(raw[wrapper], Mapping) and len(raw) <= 8:
        raw = raw[wrapper]
        break
  if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
    raise ValueError(f'{weights!r} does not hold a state dict (a mapping of names to tensors); '
                     'save one with torch.save(model.state_dict(), path).')
  if raw and all(k.startswith('module.') for k in raw):
    raw = {k[len('module.'):]: v for k, v in raw.items()}
  state_dict = {k: v.detach().cpu().float().numpy() if v.is_floating_point()
                else v.detach().cpu().numpy() for k, v in raw.items()}
  return state_dict, source


def save_converted(variables: Mapping[str, Any], output_dir: str, *,
                   info: Mapping[str, Any] | None = None, overwrite: bool = False) -> str:
  """Writes converted variables with orbax where a config's `init_from` can name them.

  Args:
    variables: {'params': ..., 'batch_stats': ...} from `convert_state_dict`.
    output_dir: directory to create (holds `variables/` and `conversion.json`).
    info: description stored in conversion.json (source, arch, preprocessing, ...).
    overwrite: replace an existing conversion in output_dir.

  Returns:
    The absolute output directory, to pass to `twostream_jax.models.pretrained.load_pretrained`.
  """
  return pretrained.save_pretrained(variables, output_dir, info=info, overwrite=overwrite)


def convert(arch: str, weights: str, output_dir: str, *, num_classes: int | None = None,
            input_channels: int = 3, seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
  """Loads torchvision weights, converts them and saves them; what the command-line tool runs.

  Returns:
    The description written to conversion.json (with 'output_dir' and 'notes').
  """
  _check_arch(arch)
  state_dict, source = load_torch_state_dict(weights, arch)
  variables, notes = convert_state_dict(arch, state_dict, num_classes=num_classes,
                                        input_channels=input_channels, seed=seed)
  params = variables['params']
  head_sizes = [int(params[name]['bias'].shape[0]) for name in sorted(params)
                if re.fullmatch(r'head(_\d+)?', name)]
  info = {
      'arch': arch,
      'source': source,
      'num_classes': head_sizes[0] if len(head_sizes) == 1 else head_sizes,
      'input_channels': int(input_channels),
      'notes': notes,
      'preprocessing': {'rgb_range': [0.0, 1.0], 'rgb_mean': list(IMAGENET_RGB_MEAN),
                        'rgb_std': list(IMAGENET_RGB_STD)},
      'num_params': int(sum(np.size(x) for x in jax.tree.leaves(variables['params']))),
  }
  info['output_dir'] = save_converted(variables, output_dir, info=info, overwrite=overwrite)
  return info
