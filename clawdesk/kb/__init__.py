"""The knowledge base: documents, chunking, encoders, the Qdrant index and hybrid retrieval."""
