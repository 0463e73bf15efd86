"""The index: chunks, their vectors and metadata in Chroma, kept in step with the corpus.

`collection` (the `Index`: sync, dense search, stored chunks), `storage` (where the Chroma database
lives: an embedded directory of builds, or a server), `builds` (build-aside directories switched in
by a pointer file) and `records` (a chunk's Chroma record and back). Keyword search over the stored
chunks is left to `retrieve`.
"""
