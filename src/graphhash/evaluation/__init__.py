"""Scoring codes: retrieval metrics (Hamming ranking with the tie rule), the classical baselines, figures."""
