"""Evaluation: the paper's test protocol over a run (`evaluate`), classification metrics, per-video
score files, late fusion of the streams' scores (`fusion`: averaging, fitted weights, linear SVM as
jitted JAX) and result tables.

May import `twostream_jax.data`, `twostream_jax.models` and `twostream_jax.train`'s restore, steps,
sharding, checkpoints and metric writers; never the training loop (`train.loop`). `fusion`,
`score_files`, `classification_metrics` and `results_table` import no TensorFlow.
"""
