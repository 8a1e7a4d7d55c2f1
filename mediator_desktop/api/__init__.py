"""The local HTTP API of a running node (FastAPI on uvicorn, 127.0.0.1 only, bearer token)."""
