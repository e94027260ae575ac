"""Temporal stream: L=10 stacked optical-flow fields (20 channels), mean flow subtraction, trained from
scratch with the paper's schedule (1e-2 -> 1e-3 at 50K -> 1e-4 at 70K, stop at 80K, batch 256,
dropout 0.9). The paper: 81.0% on UCF101 split 1 (79.9% without mean subtraction).

  python -m twostream_jax.main --config configs/temporal.py --workdir runs/temporal \
      --config.data.data_dirs=data/ucf101_records

`--config.model.name=resnet18 --config.model.init_from=weights/resnet18_flow20` with converted weights
(tools/convert_torchvision.py --input_channels 20) gives cross-modality initialisation instead.
"""

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'default.py')
  c.data.modality = 'flow'
  c.data.num_flow_fields = 10
  c.data.flow_mean_subtraction = 'per_field'
  c.data.class_balanced = True
  c.model.name = 'cnn_m_2048_temporal'
  c.model.dropout_rate = 0.9
  c.optim.learning_rate = 1e-2
  c.optim.decay_boundaries_steps = '50000,70000'
  c.train.num_train_steps = 80000
  return c
