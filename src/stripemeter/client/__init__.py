"""The Python SDK: depends on httpx only, never on the server's modules."""
