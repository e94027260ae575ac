r"""Converts torchvision ResNet / VGG-16 weights to Flax variables that training can start from.

Writes an orbax checkpoint of {'params', 'batch_stats'} plus conversion.json into --output_dir;
name that directory in a training config's `init_from`.

Examples:

  # ImageNet ResNet-50 for the spatial stream, new 101-class head (needs internet):
  python tools/convert_torchvision.py --arch=resnet50 --weights=imagenet \
      --num_classes=101 --output_dir=weights/resnet50_ucf101

  # The same weights from a downloaded state dict, cross-modality init for L=10 flow stacks:
  python tools/convert_torchvision.py --arch=resnet50 --weights=resnet50-11ad3fa6.pth \
      --num_classes=101 --input_channels=20 --output_dir=weights/resnet50_flow_ucf101

Needs torch and torchvision (pip install "twostream_jax[convert]"); training does not.
"""

from __future__ import annotations

import json
import sys

from absl import app
from absl import flags
from absl import logging

from twostream_jax.models import torchvision_conversion

_ARCH = flags.DEFINE_enum(
    'arch', None, list(torchvision_conversion.SUPPORTED_ARCHS),
    'torchvision architecture of the weights; the Flax model of the same name '
    '(twostream_jax.models.build_model) receives them.')
_WEIGHTS = flags.DEFINE_string(
    'weights', None,
    "Path to a .pth state_dict (torch.save(model.state_dict(), path); loaded with "
    "weights_only=True), or 'imagenet' to let torchvision download its default ImageNet weights "
    "for --arch (needs internet), or 'imagenet:NAME' for a named set such as IMAGENET1K_V1.")
_NUM_CLASSES = flags.DEFINE_integer(
    'num_classes', None,
    'Classes of the converted classifier head. Default: keep the weights\' head (1000 for '
    'ImageNet). Another value replaces it by a freshly initialised head (seeded by --seed).',
    lower_bound=1)
_INPUT_CHANNELS = flags.DEFINE_integer(
    'input_channels', 3,
    'Input channels of the converted first convolution: 3 for RGB, 2L (e.g. 20) for a stack of '
    'L flow fields. Other than the weights\' 3, the RGB filters are averaged over their input '
    'channels and the mean replicated to every channel (TSN cross-modality initialisation).',
    lower_bound=1)
_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', None,
    'Directory to write (orbax checkpoint in <dir>/variables, description in '
    '<dir>/conversion.json); a training config\'s init_from names it.')
_SEED = flags.DEFINE_integer('seed', 0, 'PRNG seed of a replaced classifier head.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False,
                               'Replace an existing conversion in --output_dir.')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every step of a save at INFO.
  try:
    info = torchvision_conversion.convert(
        _ARCH.value, _WEIGHTS.value, _OUTPUT_DIR.value, num_classes=_NUM_CLASSES.value,
        input_channels=_INPUT_CHANNELS.value, seed=_SEED.value, overwrite=_OVERWRITE.value)
  except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
    sys.exit(f'convert_torchvision: error: {e}')
  print(f'Wrote {info["arch"]} ({info["num_params"]:,} parameters, num_classes '
        f'{info["num_classes"]}, input_channels {info["input_channels"]}) from {info["source"]}')
  for note in info['notes']:
    print(f'  {note}')
  print(f'  to {info["output_dir"]}/variables (orbax) and {info["output_dir"]}/conversion.json')
  print(f'  preprocessing: {json.dumps(info["preprocessing"])}')
  print(f'Start training from it by setting the config key init_from={info["output_dir"]}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['arch', 'weights', 'output_dir'])
  app.run(main)
