"""The corpus side of the pipeline: files in, cleaned `Document`s (`ingest`), then sentence-window `Chunk`s
with exact offsets (`chunk`), ready for the index."""
