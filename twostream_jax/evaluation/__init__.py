"""Evaluation: per-video scores from any predict function and batches (`evaluate`, `view_batches`),
classification metrics, score files, late fusion of the streams' scores (`fusion`: averaging,
fitted weights, linear SVM as jitted JAX; `fusion_inputs`, what it refuses to fit on;
`fusion_run`, `fusion_file`) and result tables.

Imports nothing of `twostream_jax.train`: the caller brings the eval step and the data
(`train.protocol_evaluation` runs the paper's protocol over a run). No TensorFlow here.
"""
