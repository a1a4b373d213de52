"""Targets whose softmax is correct and whose log_softmax kills or blocks their process, one per
way: ``crashing.py:segfault``, ``:abort``, ``:os_exit``, ``:sys_exit``, ``:hang``, ``:retry`` (a
hang that swallows any exception a deadline could raise in its process) and ``:memory``
(allocates without bound)."""

import ctypes
import os
import sys
import time

import numpy as np


def _softmax(z, axis=-1):
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _crash(how):
    if how == "segfault":
        ctypes.string_at(0)
    elif how == "abort":
        os.abort()
    elif how == "os_exit":
        os._exit(3)
    elif how == "sys_exit":
        sys.exit(0)
    elif how == "hang":
        time.sleep(3600)
    elif how == "retry":
        while True:
            try:
                time.sleep(3600)
            except BaseException:
                continue
    elif how == "memory":
        hog = []
        while True:  # about 1 GB/s, so that the supervisor sees it well before the machine does
            hog.append(np.ones(2**22))
            time.sleep(0.01)


class _Crashing:
    def __init__(self, how):
        self.how = how

    def softmax(self, z, axis=-1):
        return _softmax(z, axis)

    def log_softmax(self, z, axis=-1):
        _crash(self.how)
        return np.log(_softmax(z, axis))


segfault = _Crashing("segfault")
abort = _Crashing("abort")
os_exit = _Crashing("os_exit")
sys_exit = _Crashing("sys_exit")
hang = _Crashing("hang")
retry = _Crashing("retry")
memory = _Crashing("memory")
