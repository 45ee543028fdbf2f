"""The decoded-pixels end-to-end model ``acfd_e2e`` (see model.py)."""
