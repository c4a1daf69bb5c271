"""Hybrid search, built once: content search, memory recall and the tool catalog choose only
their rows, their filters and their weights.

- `postings`: the lexical index (each item's lexemes as postings, with corpus statistics).
- `lexemes`: a query's text as PostgreSQL and the embedder can take it, and its lexemes.
- `corpus`: the rows one search reads (table, joins, filter).
- `lexical`: the BM25 statement over the postings.
- `dense`: the nearest-neighbour statement over a vector column (pgvector HNSW).
- `fusion`: joining the two legs (the blends, reciprocal rank fusion).
"""
