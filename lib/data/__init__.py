"""Data half of the pipeline: raw Amazon files -> parsed tables -> N-core -> splits."""
