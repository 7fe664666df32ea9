"""graphhash: unsupervised deep image hashing with graph node representations (NRDH and spectral filters)."""

__version__ = "0.1.0"
