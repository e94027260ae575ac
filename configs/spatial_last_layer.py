"""Spatial stream, fine-tuning only the last layer of the ImageNet-pretrained net (the paper: 72.7% on
UCF101 split 1, vs 72.8% fine-tuning all layers), dropout 0.9.

  python -m twostream_jax.main --config configs/spatial_last_layer.py --workdir runs/spatial_last \
      --config.data.data_dirs=data/ucf101_records --config.model.init_from=weights/resnet18_ucf101
"""

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'spatial.py')
  c.optim.train_last_layer_only = True
  c.model.dropout_rate = 0.9
  return c
