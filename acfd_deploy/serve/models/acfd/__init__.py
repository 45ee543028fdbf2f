"""The end-to-end model ``acfd`` (see model.py)."""
