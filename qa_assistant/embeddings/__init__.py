"""Word vectors: GloVe/word2vec text files and embedding initialisation."""

from qa_assistant.embeddings.vectors import (
    embedding_from_file,
    initial_embedding,
    load_vectors,
    save_vectors,
)

__all__ = ["embedding_from_file", "initial_embedding", "load_vectors", "save_vectors"]
