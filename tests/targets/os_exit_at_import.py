"""A target whose process ends with status 3 while it is imported."""

import os

os._exit(3)


def softmax(z, axis=-1):
    return z
