"""Central's storage: SQLAlchemy Core tables and queries, migrated by Alembic."""
