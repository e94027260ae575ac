"""Experiments: jobs that train many runs of the package, run by `python -m twostream_jax.main` for a
config with a top-level `experiment` key (instead of `mode`): `demo` (configs/demo.py: synthetic
videos -> records -> both streams -> fusion -> prediction) and `ablations` (configs/ablations.py:
the paper's Table 1 on the ablation set, its table made by `ablation_table`); `synthetic_streams`
holds what both use. `rehearsal` is its own entry point (`python -m
twostream_jax.experiments.rehearsal`), with `stage_runner`, `rehearsal_limits` and `rehearsal_bill`.

Each experiment module has `run(config, workdir)`. They may import every subpackage, but no entry
point (`main`, `fuse`, `predict`), nor one another. This `__init__` imports no submodule.
"""

# The values of a config's `experiment` key: twostream_jax.experiments.<name>.run runs it.
NAMES = ('demo', 'ablations')
