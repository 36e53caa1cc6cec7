"""Media in and out: decode and encode video (PyAV), photos (Pillow), image sequences, copied streams."""
