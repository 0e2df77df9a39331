"""curation: the runtime of the curation pipeline (schema, readers, IO, Ray runner, stats, reports)."""

__version__ = "0.1.0"
