"""ChatAPI: a self-hosted real-time chat API server."""

__version__ = "0.1.0"
