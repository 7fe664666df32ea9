"""Scoring codes: retrieval metrics (Hamming ranking with the tie rule) and figures; no hasher lives here."""
