"""The data pipelines called with a `config.data`, as the tests write them: each call builds the
run's `DataSpec` first, as the entry points do."""

from twostream_jax.data import data_spec
from twostream_jax.data import eval_dataset
from twostream_jax.data import pipeline_ops
from twostream_jax.data import train_dataset

InputConfigError = data_spec.InputConfigError
numpy_batches = pipeline_ops.numpy_batches


def spec(data_config) -> data_spec.DataSpec:
  return data_spec.DataSpec.from_config(data_config)


def create_train_dataset(data_config, **kwargs):
  return train_dataset.create_train_dataset(spec(data_config), **kwargs)


def create_eval_dataset(data_config, **kwargs):
  return eval_dataset.create_eval_dataset(spec(data_config), **kwargs)


def num_eval_batches(data_config, *, num_frames=None, num_crops=None, **kwargs):
  del num_frames, num_crops  # a video's views are made on the device: they do not change the count
  return eval_dataset.num_eval_batches(spec(data_config), **kwargs)


def input_channels(data_config) -> int:
  return data_spec.DataSettings.from_config(data_config).input_channels


def num_classes(data_config):
  return spec(data_config).num_classes
