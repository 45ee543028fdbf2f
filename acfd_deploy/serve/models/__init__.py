"""Triton Python-backend models; the repository writer copies each ``model.py`` into
``<repository>/<name>/1/model.py``. They are packages only so that they are installed."""
