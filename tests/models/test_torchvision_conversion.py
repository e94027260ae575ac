"""Converted torchvision models give torch's outputs; conversion options and errors.

Torch never runs in this process (torchvision + TensorFlow in one process segfaults): the
reference outputs come from tests/torch_reference.py in a subprocess, which also writes the state
dicts as .npz so that the conversion itself can run here, torch-free. The .pth path of the
command-line tool is exercised in a second subprocess.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from twostream_jax import models
from twostream_jax.models import pretrained
from twostream_jax.models import torchvision_conversion

REPO_ROOT = Path(__file__).resolve().parents[2]
HAVE_TORCH = (importlib.util.find_spec('torch') is not None
              and importlib.util.find_spec('torchvision') is not None)
needs_torch = pytest.mark.skipif(
    not HAVE_TORCH, reason='torch/torchvision not installed (pip install ".[convert]"); the '
    'torch reference cannot run')

REFERENCE_ARCHS = ('resnet18', 'resnet50', 'vgg16')
REFERENCE_SIZE = 64  # small images keep the test fast; every layer of the three nets still runs.


def _env():
  return dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS='cpu')


@pytest.fixture(scope='module')
def reference_dir():
  """Runs the torch reference once for all architectures; files go to RAM where possible."""
  base = '/dev/shm' if os.access('/dev/shm', os.W_OK) else None
  out_dir = tempfile.mkdtemp(prefix='tv_reference_', dir=base)
  try:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tests' / 'torch_reference.py'),
         f'--archs={",".join(REFERENCE_ARCHS)}', '--pth_archs=resnet18',
         '--train_archs=resnet18', f'--out_dir={out_dir}',
         f'--size={REFERENCE_SIZE}', '--batch=2', '--seed=0'],
        env=_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    yield Path(out_dir)
  finally:
    shutil.rmtree(out_dir, ignore_errors=True)


def _load(reference_dir, arch):
  state_dir = reference_dir / f'{arch}_state'
  keys = json.loads((state_dir / 'keys.json').read_text())
  state = {k: np.load(state_dir / f'{i}.npy', mmap_mode='r') for i, k in enumerate(keys)}
  ref = dict(np.load(reference_dir / f'{arch}_ref.npz'))
  return state, ref


def _torch_param_count(state):
  buffers = ('running_mean', 'running_var', 'num_batches_tracked')
  return sum(v.size for k, v in state.items() if not k.endswith(buffers))


@needs_torch
@pytest.mark.parametrize('arch', REFERENCE_ARCHS)
def test_converted_logits_match_torch_in_eval_mode(reference_dir, arch):
  state, ref = _load(reference_dir, arch)
  variables, notes = torchvision_conversion.convert_state_dict(arch, state)
  assert notes == []
  assert sum(np.size(x) for x in jax.tree.leaves(variables['params'])) == _torch_param_count(state)
  model = models.build_model(arch, 1000)

  logits_eval = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, ref['x'])
  assert np.abs(np.asarray(logits_eval) - ref['logits_eval']).max() <= 1e-4


def _converted_resnet18(reference_dir):
  """(arch, torch state, reference outputs, converted variables, Flax model) of the train tests."""
  arch = 'resnet18'
  state, ref = _load(reference_dir, arch)
  variables, _ = torchvision_conversion.convert_state_dict(arch, state)
  return arch, state, ref, variables, models.build_model(arch, 1000)


@needs_torch
def test_train_mode_step_matches_torch(reference_dir):
  # ResNet-18 only: through ResNet-50, batch statistics of 8 values per channel (layer4 at 64x64,
  # batch 2) amplify float32 rounding to ~1.5e-4 even between torch float32 and float64.
  arch, state, ref, variables, model = _converted_resnet18(reference_dir)
  logits_train, updates = jax.jit(
      lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']))(variables, ref['x'])
  new_stats = updates['batch_stats']
  assert np.abs(np.asarray(logits_train) - ref['logits_train']).max() <= 1e-4
  # torch momentum 0.1 with the unbiased variance == TorchBatchNorm's momentum 0.9.
  flat = traverse_util.flatten_dict(new_stats)
  assert len(flat) == sum(k.startswith('running/') for k in ref)
  for path, value in flat.items():
    want = ref['running/' + torchvision_conversion.torch_key(arch, ('batch_stats',) + path)]
    np.testing.assert_allclose(np.asarray(value), want, rtol=1e-4, atol=1e-5,
                               err_msg='/'.join(path))
  # The update really moved the statistics (else the check above would be vacuous).
  old = traverse_util.flatten_dict(variables['batch_stats'])
  assert max(np.abs(old[p] - np.asarray(v)).max() for p, v in flat.items()) > 1e-2


@needs_torch
def test_train_mode_gradients_match_torch(reference_dir):
  # Through every hand-written backward pass (batch norm, max pooling, strided convolutions).
  arch, state, ref, variables, model = _converted_resnet18(reference_dir)

  def objective(params):
    logits, _ = model.apply({'params': params, 'batch_stats': variables['batch_stats']},
                            ref['x'], train=True, mutable=['batch_stats'])
    return jnp.sum(logits * ref['cotangent'])

  grads = jax.jit(jax.grad(objective))(variables['params'])
  # torch's gradients, laid out as parameters by the converter itself.
  torch_grads = dict(state, **{k[len('grad/'):]: v for k, v in ref.items() if k.startswith('grad/')})
  want = traverse_util.flatten_dict(
      torchvision_conversion.convert_state_dict(arch, torch_grads)[0]['params'])
  got = traverse_util.flatten_dict(grads)
  assert set(got) == set(want)
  for path, value in got.items():
    scale = np.abs(want[path]).max()
    assert scale > 0, path
    np.testing.assert_allclose(np.asarray(value), want[path], rtol=0, atol=2e-4 * scale,
                               err_msg='/'.join(path))


@needs_torch
def test_cli_converts_pth_with_new_head_and_cross_modality(reference_dir, tmp_path):
  out_dir = tmp_path / 'resnet18_flow'
  result = subprocess.run(
      [sys.executable, str(REPO_ROOT / 'tools' / 'convert_torchvision.py'), '--arch=resnet18',
       f'--weights={reference_dir / "resnet18.pth"}', '--num_classes=101',
       '--input_channels=20', f'--output_dir={out_dir}', '--seed=3'],
      env=_env(), capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert str(out_dir.resolve()) in result.stdout and 'cross-modality' in result.stdout

  state, _ = _load(reference_dir, 'resnet18')
  loaded = pretrained.load_pretrained(str(out_dir))
  params = loaded['params']
  # TSN cross-modality: every one of the 20 input channels is the mean of the RGB filters.
  rgb_mean = state['conv1.weight'].mean(axis=1).transpose(1, 2, 0)  # [7, 7, 64]
  assert params['conv1']['kernel'].shape == (7, 7, 20, 64)
  for c in range(20):
    np.testing.assert_allclose(params['conv1']['kernel'][:, :, c, :], rgb_mean, rtol=1e-6,
                               atol=1e-7)
  assert params['head']['kernel'].shape == (512, 101) and params['head']['bias'].shape == (101,)
  # Everything else is the file's weights.
  np.testing.assert_array_equal(params['layer4_1']['conv2']['kernel'],
                                state['layer4.1.conv2.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(loaded['batch_stats']['layer2_0']['downsample_1']['var'],
                                state['layer2.0.downsample.1.running_var'])
  info = json.loads((out_dir / 'conversion.json').read_text())
  assert (info['arch'], info['num_classes'], info['input_channels']) == ('resnet18', 101, 20)
  assert info['preprocessing']['rgb_mean'] == list(torchvision_conversion.IMAGENET_RGB_MEAN)

  # The result is exactly what the 20-channel, 101-class model expects.
  model = models.build_model('resnet18', 101)
  x = jax.ShapeDtypeStruct((1, 64, 64, 20), jnp.float32)
  shapes = jax.eval_shape(lambda inp: model.init(jax.random.key(0), inp, train=False), x)
  merged, kept = pretrained.merge_pretrained(shapes, loaded)
  assert kept == []


@needs_torch
def test_state_dict_of_another_arch_names_first_mismatching_key(reference_dir):
  state, _ = _load(reference_dir, 'resnet18')
  # conv1 and bn1 are alike; resnet18's first block starts with a 3x3 conv, resnet50's
  # bottleneck with a 1x1 conv of the same width.
  with pytest.raises(ValueError, match=r"'layer1\.0\.conv1\.weight'.*\(64, 64, 3, 3\).*"
                     r"resnet50 expects \(64, 64, 1, 1\)"):
    torchvision_conversion.convert_state_dict('resnet50', state)
  vgg_state = {'features.0.weight': np.zeros((64, 3, 3, 3), np.float32)}
  with pytest.raises(ValueError, match="no key 'fc.weight'"):
    torchvision_conversion.convert_state_dict('resnet18', vgg_state)
  extra = dict(state, **{'fc.extra': np.zeros(1, np.float32)})
  with pytest.raises(ValueError, match="unexpected key 'fc.extra'"):
    torchvision_conversion.convert_state_dict('resnet18', extra)
  missing = {k: v for k, v in state.items() if k != 'layer3.1.bn2.running_var'}
  with pytest.raises(ValueError, match=r"'layer3\.1\.bn2\.running_var'.*missing"):
    torchvision_conversion.convert_state_dict('resnet18', missing)


def test_unknown_arch_lists_supported():
  with pytest.raises(ValueError, match='resnet18.*vgg16_bn'):
    torchvision_conversion.convert_state_dict('alexnet', {})


def test_torch_keys_follow_torchvision_names():
  assert torchvision_conversion.torch_key('resnet50', ('params', 'layer2_0', 'downsample_0', 'kernel')) == \
      'layer2.0.downsample.0.weight'
  assert torchvision_conversion.torch_key('resnet50', ('batch_stats', 'layer2_0', 'downsample_1', 'var')) == \
      'layer2.0.downsample.1.running_var'
  assert torchvision_conversion.torch_key('vgg16_bn', ('params', 'features_41', 'scale')) == 'features.41.weight'
  assert torchvision_conversion.torch_key('vgg16', ('params', 'head', 'bias')) == 'classifier.6.bias'
  assert torchvision_conversion.torch_key('resnet18', ('params', 'head', 'kernel')) == 'fc.weight'


def test_cross_modality_kernel_replicates_channel_mean():
  kernel = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)
  out = torchvision_conversion.cross_modality_kernel(kernel, 20)
  assert out.shape == (2, 2, 20, 4)
  for c in range(20):
    np.testing.assert_allclose(out[:, :, c],
                               (kernel[:, :, 0] + kernel[:, :, 1] + kernel[:, :, 2]) / 3)


def test_vgg_first_classifier_rows_follow_nhwc_flattening():
  # torch column index c * 49 + h * 7 + w must land on Flax row (h * 7 + w) * 512 + c.
  out_features, channels = 2, 512
  torch_weight = np.arange(out_features * channels * 49, dtype=np.float32).reshape(
      out_features, channels * 49)
  flax_kernel = torchvision_conversion._to_flax('vgg16', ('params', 'classifier_0', 'kernel'), torch_weight, (7, 7))
  for (c, h, w) in [(0, 0, 0), (5, 1, 2), (511, 6, 6)]:
    np.testing.assert_array_equal(flax_kernel[(h * 7 + w) * channels + c],
                                  torch_weight[:, c * 49 + h * 7 + w])


def test_cli_help_documents_every_flag():
  result = subprocess.run(
      [sys.executable, str(REPO_ROOT / 'tools' / 'convert_torchvision.py'), '--help'],
      env=_env(), capture_output=True, text=True, check=False)
  assert result.returncode in (0, 1), result.stderr[-2000:]  # absl's --help exits with 1.
  for flag in ('--arch', '--weights', '--num_classes', '--input_channels', '--output_dir',
               '--seed'):
    assert flag in result.stdout
  assert 'weights_only' in result.stdout and 'imagenet' in result.stdout
