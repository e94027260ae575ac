"""Spatial stream: one RGB frame, ImageNet-pretrained ResNet-18 converted from torchvision, all layers
fine-tuned with the paper's fine-tuning schedule (1e-2 -> 1e-3 at 14K, stop at 20K, batch 256).
The paper (CNN-M-2048, ImageNet-pretrained): 72.8% on UCF101 split 1 fine-tuning all layers.

  python tools/convert_torchvision.py --arch resnet18 --weights resnet18.pth --num_classes 101 \
      --output_dir weights/resnet18_ucf101
  python -m twostream_jax.main --config configs/spatial.py --workdir runs/spatial \
      --config.data.data_dirs=data/ucf101_records --config.model.init_from=weights/resnet18_ucf101
"""

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'default.py')
  c.data.modality = 'rgb'
  c.data.normalization = 'imagenet'
  c.data.class_balanced = True
  c.model.name = 'resnet18'
  c.model.dropout_rate = 0.5
  c.optim.learning_rate = 1e-2
  c.optim.decay_boundaries_steps = '14000'
  c.train.num_train_steps = 20000
  return c
