"""Training: the train state (`state`), optimizer and schedule, the losses and the jitted train and
eval steps (`steps`), the data mesh (`sharding`), orbax checkpoints, metric writers, restoring a run
(`restore`), the training loop (`loop`) and the paper's protocol over a run (`protocol_evaluation`).

May import `twostream_jax.models`, `twostream_jax.data` and `twostream_jax.evaluation`. `state`,
`optimizer`, `losses`, `steps` and `sharding` are JAX only (no TensorFlow). This `__init__` imports
no submodule.
"""
