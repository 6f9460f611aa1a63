"""claudomator: a GitOps-style, file-watching directory runner for Claude Code."""

__version__ = "0.1.0"
