"""Aesthetic heads over an image encoder (CLIP ViT-L/14, SigLIP so400m): the heads
(`heads`), the encoders they read (`encoders`) and the source (`source`)."""
