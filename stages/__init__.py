"""The DVC stages' scripts, one per stage, each its arguments (dvc.yaml's paths) and params sections -> one pipeline
call. A package only so that import-linter checks them (pyproject.toml); DVC runs each as a script."""
