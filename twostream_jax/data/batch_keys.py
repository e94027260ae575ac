"""The keys of the batches the input pipeline yields, shared with the device view transform.

`train.device_views` documents each key's dtype and shape. Plain strings (no TensorFlow, no JAX),
so that both sides, and hosts without TensorFlow, agree on them.
"""

IMAGES = 'images'  # uint8 [n, Hc, Wc, c]: RGB frames or quantised flow stacks on a canvas
# int32 [v, K] or [v, K, 2L]: evaluation, which frames / planes of a video's bank (its `images`)
# each of its K test positions uses.
ROWS = 'rows'
BOXES = 'boxes'  # int32 [n, V, 4]: (y0, x0, h, w) of each view in the canvas
FLIPS = 'flips'  # bool [n, V]
FLOW_STEP = 'flow_step'  # float32 [n]: B / 127.5 (flow only)
JITTER = 'jitter'  # float32 [n, 3]: colour-jitter factors (RGB with data.color_jitter > 0 only)
LABEL = 'label'  # int32 [n]
DATASET_INDEX = 'dataset_index'  # int32 [n]
VIDEO_INDEX = 'video_index'  # int32 [n]: evaluation, -1 for padding
MASK = 'mask'  # float32 [n]: evaluation, 1 real, 0 padding
