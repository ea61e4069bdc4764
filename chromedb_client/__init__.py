"""The Python client and command-line tool of chromedb-instance (README: Client and CLI)."""

from chromedb_client.client import ApiError, Client, Document, EmbedResult, Hit, Page

__all__ = ["ApiError", "Client", "Document", "EmbedResult", "Hit", "Page"]
