"""Prediction from video files: trained streams restored from their workdirs classify new videos.

`video_prediction` (the library of `python -m twostream_jax.predict`) decodes each video as the
records were made (`clip_reader`), computes its flow, scores the test views with each restored
stream (`stream_predictor`), fuses the streams and draws a picture per video (`prediction_strip`);
`record_match` holds what is checked against the records (flow parameters, frame rate).

May import `twostream_jax.data`, `models`, `flow`, the stream scores and fusion of `evaluation`,
the restore, steps, sharding and task heads of `train`, and the video decoder and JPEG codec of `prep`; never
the training loop or the TFRecord writers. `stream_predictor` imports no TensorFlow. `__init__`
imports no submodule.
"""
