"""A run's searchable database and its changes: ``graphhash add`` and ``graphhash remove`` without retraining.

changes.py     the changes file: every add and remove, in order, declared as the pipeline's input
additions.py   added items' features: embedding image files as the run did, one file per add
run.py         Database: add, remove, and the one way index files follow the changes
"""
