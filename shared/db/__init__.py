"""The database: typed models, the per-process engine, and keyword-only query functions."""
