"""Records and their reading: the record schema (`record_schema`), dataset metadata, the run's data
spec (`data_spec`), the record index and reader, sampling of frames and flow stacks, per-example ops
and the tf.data pipelines (`train_dataset`, `eval_dataset`).

TensorFlow lives in the pipelines (`data_spec`, `protocol_views`, `protocol_positions`, `batch_keys`
and `record_schema`'s numpy half need none). Imports nothing of the package outside
`twostream_jax.data`. No OpenCV: JPEGs are decoded with `tf.io.decode_jpeg`.
"""
