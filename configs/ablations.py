"""The paper's ablations (Table 1) on the ablation set, each row with 3 seeds (mean and std):

  python -m twostream_jax.main --config configs/ablations.py [--workdir runs/ablations]
  python -m twostream_jax.main --config configs/ablations.py --config.ablations.quick=True  # CI check

An experiment (`experiment='ablations'`: twostream_jax/experiments/ablations.py, which names the
rows). Temporal: L = 1 / 5 / 10 flow fields, mean flow subtraction on / off, trajectory stacking,
bi-directional flow; spatial: from scratch, pretrained on the related pretraining set and
fine-tuned, pretrained with the last layer only; fusion of fine-tuned spatial and L = 10 temporal.
The set (prep/ablation_videos.py; why each row should matter: docs/ablations.md) is described by
the `ablations` keys; of the `demo` keys, data_root, flow_algorithm, num_workers, the steps and
the learning rates apply (its video_* and camera keys do not). The streams are configs/demo.py's
(the small net) at 56 px crops. Writes ablations.json and ablations.md in the workdir and prints
the markdown table.
"""

import ml_collections

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'demo.py')
  c.unlock()
  c.experiment = 'ablations'
  c.demo.compare_mean_subtraction = False  # The ablation rows cover it.
  c.demo.data_root = 'data/ablations'  # Videos in <data_root>/videos, records in <data_root>/records.
  c.demo.flow_algorithm = 'dis'  # DIS: fast; the rows need no TV-L1 (docs/ablations.md).
  c.demo.temporal_steps = 150
  c.demo.spatial_steps = 150
  c.data.crop_size = 56
  c.data.test_num_frames = 5  # 5 frames x 2 crops (centre and its flip) per test video.
  c.data.test_num_crops = 2
  c.train.checkpoint_every_steps = 150

  ab = c.ablations = ml_collections.ConfigDict()
  ab.rows = ''  # Comma-separated subset of the rows (experiments/ablations.py names them); '' = all.
  ab.seeds = 3  # Trainings per row (seeds seed, seed + 1, ...); the table gives mean and std.
  ab.spatial_dropout = 0.5  # Dropout of the spatial rows (the paper's Table 1 has 0.5 and 0.9).
  # ---- The ablation set (prep/ablation_videos.py): families x {Reverse, Steady, Zigzag} ----
  ab.appearances = 'Checker,Dots,Stripes'
  ab.video_height = 64
  ab.video_width = 80
  ab.video_frames = 13
  ab.camera = True  # The zigzagging camera (mean flow subtraction's row needs it).
  ab.train_per_class = 4  # Few: the spatial rows compare pretraining with training from scratch.
  ab.test_per_class = 6
  # ---- The related pretraining set: the same families, many videos, another seed ----
  ab.pretrain_data_root = 'data/ablations_pretrain'
  ab.pretrain_per_class = 40
  ab.pretrain_seed_offset = 1000  # Its seed = seed + this.
  ab.pretrain_steps = 300
  # ---- Quick mode: a check of the chain for CI (its L=1 and L=10 rows still differ) ----
  ab.quick = False
  ab.quick_data_root = 'data/ablations_quick'
  ab.quick_appearances = 'Checker'
  ab.quick_train_per_class = 8
  ab.quick_test_per_class = 10
  ab.quick_seeds = 1
  ab.quick_steps = 60
  ab.quick_test_num_frames = 3
  c.lock()
  return c
