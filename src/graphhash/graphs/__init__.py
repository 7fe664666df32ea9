"""Graphs over the items: NRDH's mini-batch graphs (Eqs. 2-4), kNN graphs, and the filters that run on them."""
