"""Model loading (open_clip) and the CLIP classifier."""
