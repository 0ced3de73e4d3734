"""The log store: DuckDB tables, validated ingest, the JSONL fast path, bounded JSON, forgetting a user."""
