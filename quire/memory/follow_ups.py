"""The memory programs the content layer starts after a document changes, by name.

Names only, so that the composition root can hand them to the content layer without importing
memory's programs (and all of memory with them): `quire ingest` with a worker alive only uploads.
"""

ON_VERSION = "memory.on-version"  # after a version is indexed (memory/programs.py)
ON_DOCUMENT_DELETED = "memory.on-delete"  # after a document is deleted

AFTER_INDEX = (ON_VERSION,)
ON_DELETE = (ON_DOCUMENT_DELETED,)
