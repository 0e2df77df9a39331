"""Recipes (recipes.py) and the entry points that compose them: baseline.py, ablate.py, score.py.

Installed with the package, so that a script copied alone to a cluster node (`ray submit`) finds the
recipes it imports."""
