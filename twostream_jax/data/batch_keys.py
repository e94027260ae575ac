"""The keys of the uint8 batches the input pipeline hands to the device view transform.

Plain strings (no TensorFlow, no JAX), so that the pipeline, `train.device_views` and hosts without
TensorFlow (`inference`) agree on them. n examples or test positions, V views of each; evaluation
batches hold v videos of K test positions. The other keys of a batch (label, dataset_index,
video_index, mask) are the pipelines' (`data.train_dataset`, `data.eval_dataset`).
"""

# uint8 [n, Hc, Wc, 3] RGB, or [n, 2L, Hc, Wc] quantised flow planes (plane 2k = x, 2k + 1 = y of
# field k) as decoded, on a zero-padded canvas; evaluation: [v, F, Hc, Wc(, 3)], a video's bank of
# distinct frames or planes, each once.
IMAGES = 'images'
# Evaluation only: int32 [v, K] (RGB) or [v, K, 2L] (flow), the bank frame or planes of each of
# the K test positions.
ROWS = 'rows'
# int32 [n, V, 4] (y0, x0, h, w) of each view's box in the canvas, or [n, V, 2] (y0, x0) when every
# box is S x S (the views are then slices, no resize).
BOXES = 'boxes'
FLIPS = 'flips'  # bool [n, V]: mirror the view left-right (negates flow x)
FLOW_STEP = 'flow_step'  # float32 [n]: flow only, pixels per quantisation level, B / 127.5
JITTER = 'jitter'  # float32 [n, 3]: RGB with data.color_jitter > 0 only, the colour-jitter factors
