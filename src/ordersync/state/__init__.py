"""Sync state in a SQLAlchemy database (SQLite by default, PostgreSQL in production), under Alembic."""
