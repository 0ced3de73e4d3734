"""Where the mining plan runs: embedded (Polars/DuckDB, ``rewrite.mining``) or Apache Spark (``engines.spark``)."""
