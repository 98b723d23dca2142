"""issueminer: mine, label and report developers' issues."""

__version__ = "0.1.0"
