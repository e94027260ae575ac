"""The package's shape: the dependency rule of docs/ARCHITECTURE.md, and a JAX core without TensorFlow."""

import ast
import json
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'twostream_jax'

# Subpackage -> what its modules may import from the package (besides themselves).
ALLOWED = {
    'flow': set(),
    'data': set(),
    'models': set(),
    'prep': {'flow', 'data'},
    # Evaluation gets its eval function and data from its caller: nothing of train/.
    'evaluation': {'data'},
    # The trainer runs evaluations (validation, the protocol after training).
    'train': {'models', 'data', 'evaluation', 'config_loading'},
    # Decoding a video as the records were made needs prep's video decoder and JPEG codec.
    'inference': {'data', 'models', 'flow', 'evaluation', 'train.restore', 'train.state',
                  'train.steps', 'train.sharding', 'train.checkpointing', 'train.device_views',
                  'train.task_heads',
                  'prep.video_decoding', 'prep.jpeg_codec'},
    'experiments': {'data', 'models', 'flow', 'prep', 'train', 'evaluation', 'inference'},
}
ENTRY_POINTS = {'main', 'fuse', 'predict'}
# The one top-level module that is no entry point: configs/*.py build on each other through it.
TOP_LEVEL_LIBRARY = {'config_loading'}
# Modules that accelerator hosts without TensorFlow import (the JAX core).
JAX_CORE = [
    'twostream_jax.models', 'twostream_jax.models.cnn_m', 'twostream_jax.models.layers',
    'twostream_jax.models.resnet', 'twostream_jax.models.small', 'twostream_jax.models.tiny',
    'twostream_jax.models.vgg', 'twostream_jax.models.pretrained',
    'twostream_jax.models.torchvision_conversion', 'twostream_jax.flow.tvl1_jax',
    'twostream_jax.flow.tvl1_ops', 'twostream_jax.train.state', 'twostream_jax.train.steps',
    'twostream_jax.train.optimizer', 'twostream_jax.train.sharding', 'twostream_jax.train.device_views',
    'twostream_jax.data.batch_keys', 'twostream_jax.train.last_layer', 'twostream_jax.evaluation.fusion',
    'twostream_jax.evaluation.score_files', 'twostream_jax.evaluation.classification_metrics',
    'twostream_jax.evaluation.fusion_file', 'twostream_jax.evaluation.stream_scores',
    'twostream_jax.data.protocol_views', 'twostream_jax.inference.stream_predictor',
    'twostream_jax.train.preemption', 'twostream_jax.evaluation.partial_scores',
]


def _package_imports(path: pathlib.Path) -> set[str]:
  """Dotted names (below twostream_jax) that a module imports, at any depth of its code."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('twostream_jax'):
      base = node.module[len('twostream_jax'):].lstrip('.')
      for alias in node.names:
        names.add(f'{base}.{alias.name}'.lstrip('.') if base.count('.') == 0 else base)
    elif isinstance(node, ast.Import):
      names.update(a.name[len('twostream_jax.'):] for a in node.names
                   if a.name.startswith('twostream_jax.'))
  return names


def _allowed(subpackage: str, imported: str) -> bool:
  if imported == subpackage or imported.startswith(subpackage + '.'):
    return True
  return any(imported == a or imported.startswith(a + '.') for a in ALLOWED[subpackage])


def test_dependencies_point_one_way():
  broken = []
  for subpackage in ALLOWED:
    for path in sorted((PACKAGE / subpackage).glob('*.py')):
      for imported in sorted(_package_imports(path)):
        if not _allowed(subpackage, imported):
          broken.append(f'{path.relative_to(PACKAGE.parent)} imports twostream_jax.{imported}')
  assert not broken, '\n'.join(broken)


def test_top_level_holds_only_entry_points_and_no_entry_point_imports_another():
  modules = {p.stem for p in PACKAGE.glob('*.py') if p.name != '__init__.py'}
  assert modules == ENTRY_POINTS | TOP_LEVEL_LIBRARY
  subpackages = {p.name for p in PACKAGE.iterdir() if (p / '__init__.py').exists()}
  assert subpackages == set(ALLOWED)
  for name in subpackages:  # each says what it is for
    assert ast.get_docstring(ast.parse((PACKAGE / name / '__init__.py').read_text()))
  broken = []
  for path in [PACKAGE / f'{m}.py' for m in sorted(modules)] + sorted(PACKAGE.glob('*/*.py')):
    for imported in _package_imports(path):
      if imported.split('.')[0] in ENTRY_POINTS:
        broken.append(f'{path.relative_to(PACKAGE.parent)} imports twostream_jax.{imported}')
  assert not broken, '\n'.join(broken)


def test_subpackage_inits_import_no_submodule_but_the_model_registry():
  # Importing one module does not drag in its siblings' dependencies; models/__init__.py is the
  # model registry (`models.build_model`), which needs every network (all TensorFlow-free).
  for init in sorted(PACKAGE.glob('*/__init__.py')):
    imported = _package_imports(init)
    if init.parent.name == 'models':
      assert all(name.startswith('models.') for name in imported), imported
    else:
      assert not imported, (init, imported)


def test_jax_core_imports_no_tensorflow_or_opencv():
  code = ('import importlib, json, sys\n'
          f'for m in {JAX_CORE!r}: importlib.import_module(m)\n'
          'print(json.dumps(sorted(k for k in ("tensorflow", "cv2", "torch", "tensorflow_datasets") '
          'if k in sys.modules)))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize('module', ['twostream_jax.flow.algorithms', 'twostream_jax.prep.jpeg_codec'])
def test_opencv_modules_import_no_tensorflow(module):
  code = f'import importlib, sys; importlib.import_module({module!r}); print("tensorflow" in sys.modules)'
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert out.stdout.strip().splitlines()[-1] == 'False'
