"""Training: the train state (`state`), optimizer and schedule, the jitted train and eval steps
(`steps`), the data mesh (`sharding`), orbax checkpoints, metric writers, restoring a run
(`restore`), the shared evaluation batch loop (`eval_batches`) and the training loop (`loop`).

May import `twostream_jax.models` and `twostream_jax.data`. `state`, `optimizer`, `steps` and
`sharding` are JAX only (no TensorFlow): the loop, `restore` and `eval_batches` bring in the input
pipeline. This `__init__` imports no submodule.
"""
