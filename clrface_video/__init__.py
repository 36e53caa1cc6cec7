"""clrface-video: restore faces in videos and photo collections with the CLR-Face method."""

__version__ = "0.1.0"
