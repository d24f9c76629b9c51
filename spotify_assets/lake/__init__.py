"""Delta table I/O at the edges of the pipeline, and the metadata each write reports."""
