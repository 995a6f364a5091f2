"""The DuckDB mirror analysts query: canonical tables, raw payloads, quarantine and views."""
