"""The stages: for each, the files it reads and the files it writes. ``stages/*.py`` call these with the
paths dvc.yaml gives them and the params.yaml sections they read."""
