"""The paper's ablations (Table 1) on the synthetic action videos, each row with the demo's budget:

  python -m twostream_jax.main --config configs/ablations.py [--workdir runs/ablations]
  python -m twostream_jax.main --config configs/ablations.py --config.ablations.quick=True  # minutes

An experiment (`experiment='ablations'`: twostream_jax/experiments/ablations.py, which names the
rows). Temporal: L = 1 / 5 / 10 flow fields, mean flow subtraction on / off, trajectory stacking,
bi-directional flow; spatial: from scratch, pretrained on a second synthetic set and fine-tuned,
pretrained with the last layer only. Reuses the demo's videos and records (demo.data_root) when
present. Writes ablations.json and ablations.md in the workdir. Same data, model and protocol as
configs/demo.py (whose keys it has): 5 frames x 10 crops per test video.
"""

import ml_collections

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'demo.py')
  c.unlock()
  c.experiment = 'ablations'
  c.demo.compare_mean_subtraction = False  # The ablation rows cover it.

  ab = c.ablations = ml_collections.ConfigDict()
  ab.rows = ''  # Comma-separated subset of the rows (experiments/ablations.py names them); '' = all.
  ab.spatial_dropout = 0.5  # Dropout of the spatial rows (the paper's Table 1 has 0.5 and 0.9).
  # The second synthetic set the 'pretrained' spatial nets start from (another seed: other colours).
  ab.pretrain_data_root = 'data/synthetic_pretrain'
  ab.pretrain_seed_offset = 1000  # Its seed = seed + this.
  ab.quick = False  # Every row with quick_steps steps on a tiny set: checks the chain in minutes.
  ab.quick_steps = 4
  ab.quick_data_root = 'data/synthetic_ablations_quick'
  c.lock()
  return c
