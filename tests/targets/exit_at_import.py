"""A target that calls sys.exit(0) while it is imported."""

import sys

import numpy as np

sys.exit(0)


def softmax(z, axis=-1):
    return np.exp(z)
