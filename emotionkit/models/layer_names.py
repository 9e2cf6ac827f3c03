"""The layer names every classifier is built with: the contract other stages rely on.

Freezing (`model.freeze`), embeddings and t-SNE, Grad-CAM, the model summary and the head of
a pretrained checkpoint find their layers by these names, so a new architecture only has to
name its layers this way (`models/head.py` builds the shared input and head for it).
"""

from __future__ import annotations

INPUT = "image"
"""The raw 0-255 pixel input."""
NORMALIZE = "normalize"
"""The Rescaling layer that folds the train-set mean and std into the model."""
EXPAND_CHANNELS = "expand_channels"
"""Repeats a 1-channel input to 3 channels (`model.expand_channels`)."""
STEM_PREFIX = "conv1_"
"""Every stem layer's name starts with it (`model.freeze: stem`)."""
EMBEDDING = "avg_pool"
"""Global average pooling: its input is the last spatial feature map (Grad-CAM's default),
its output the embedding (t-SNE, `embedding_model`)."""
HEAD_DROPOUT = "head_dropout"
"""Dropout before the logits (`model.dropout` > 0)."""
LOGITS = "logits"
"""The float32 Dense head: logits, no softmax."""
HEAD = (HEAD_DROPOUT, LOGITS)
"""The layers `model.freeze: backbone` leaves trainable."""

BN_EPSILON = 1.001e-5
"""BatchNorm epsilon of every emotionkit block: KerasCV's value, so our stems and heads match
the vendored KerasCV blocks."""
