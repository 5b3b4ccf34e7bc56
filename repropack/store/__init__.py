"""The run store: every run's record in a database (SQLite by default, PostgreSQL for a lab) and its
output files and log as content-addressed blobs. It imports only the shared modules below the pipeline."""
