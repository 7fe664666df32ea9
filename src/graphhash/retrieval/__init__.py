"""Retrieval with a trained run: ``Retriever`` (the Python API), and the web app of ``graphhash serve``."""
