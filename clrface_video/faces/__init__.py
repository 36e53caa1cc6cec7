"""Faces in frames: detect, align to the template, track across frames, identity embeddings, paste back."""
