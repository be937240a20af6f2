"""RAG strategy: corpus loading, chunking, embeddings, retrieval and prompt assembly within a token budget."""
