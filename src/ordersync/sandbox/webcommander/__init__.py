"""The WebCommander external-app API sandbox."""
