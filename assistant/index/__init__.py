"""The index: chunks, their vectors and metadata in Chroma, kept in step with the corpus.

`collection` (the `Index`: sync, dense search, stored chunks), `writing` (a sync's plan upserted in
batches, its report), `storage` (where the Chroma database
lives: an embedded directory of builds, or a server), `builds` (build-aside directories switched in
by a pointer file), `records` (a chunk's Chroma record and back) and `keyword` (jieba tokens and BM25
over the stored chunks); `retrieve` combines the two searches, and `outline` reads each document back in
order.
"""
