"""Persistence: the database (`db`), its schema (`models`, `migrations`), typed queries
(`repository`) and call recordings (`recordings`).

Nothing is re-exported here, so importing the recorder on the audio path does not pull
in SQLAlchemy and Alembic.
"""
