"""Recommendations trained on the hub's listening events: data, split, baselines, a SASRec
model, full-ranking evaluation and versioned artifacts (``ml.train`` ties them together).

Only ``ml.sasrec`` and ``ml.artifact`` import torch; the rest needs numpy alone.
"""
