"""The files the stages pass to each other, and how they are written (atomically) and read (checked).

manifest (JSON) | features, neighbours, representations, codes (HDF5, with a format tag each) | models
(a folder: state dict + configuration). Each module holds one contract: its layout, a writer and a reader.
"""
