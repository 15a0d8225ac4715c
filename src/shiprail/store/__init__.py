"""The one store: SQLAlchemy 2 models, Alembic migrations, the audit chain."""
