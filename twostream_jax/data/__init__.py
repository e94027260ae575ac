"""Reading records for training and evaluation: the record schema and parse (`record_schema`), the
record index and random-access reader (`record_index`), dataset metadata, sampling of frames and
flow stacks, per-example ops and the tf.data pipelines (`input_pipeline`, `video_ops`).

TensorFlow lives here (except `record_schema`'s numpy half). Imports nothing of the package outside
`twostream_jax.data`. No OpenCV: JPEGs are decoded with `tf.io.decode_jpeg`.
"""
