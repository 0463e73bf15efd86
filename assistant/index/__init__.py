"""The index: chunks, their vectors and metadata in Chroma, kept in step with the corpus.

`collection` (the `Index`: sync, dense search, stored chunks), `storage` (where the Chroma database
lives: an embedded directory of builds, or a server), `builds` (build-aside directories switched in
by a pointer file), `records` (a chunk's Chroma record and back) and `keyword` (jieba tokens and BM25
over the stored chunks; `retrieve` combines it with the dense search).
"""
