"""WebCommander: the external-app API (``uuid`` + ``accessToken`` headers)."""
