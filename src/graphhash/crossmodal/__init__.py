"""Cross-modal hashing: one Hamming space for paired views (image <-> text retrieval) and its classical baselines."""
