"""content: a version carries the title it gives its document (its upload's, or its first heading)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("content_version", sa.Column("title", sa.Text(), nullable=True))
    # Versions parsed before: their first heading, on one line (content/titles.py).
    op.execute(
        """
        UPDATE content_version AS v SET title = left(h.line, 1000)
        FROM (
            SELECT DISTINCT ON (version_id) version_id,
                   btrim(regexp_replace(text, '\\s+', ' ', 'g')) AS line
            FROM content_element
            WHERE type = 'title' AND btrim(text) <> ''
            ORDER BY version_id, ord
        ) AS h
        WHERE h.version_id = v.id
        """
    )
    # Documents still titled by their file name take their searchable version's heading; a title
    # an upload named is left as it is.
    op.execute(
        """
        UPDATE content_document AS d SET title = v.title
        FROM content_version AS v
        WHERE v.id = d.latest_version_id AND v.title IS NOT NULL
          AND d.title = regexp_replace(regexp_replace(d.source_key, '^.*/', ''), '\\.[^.]*$', '')
        """
    )


def downgrade() -> None:
    op.drop_column("content_version", "title")
