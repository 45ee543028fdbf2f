"""Command-line tools: thin shells over functions that the tests call directly."""
