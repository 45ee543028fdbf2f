"""The raw-network model ``acfd_engine`` (see model.py)."""
