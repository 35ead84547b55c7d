"""Word vectors: GloVe/word2vec text files, embedding initialisation, Word2Vec, neighbours, projector."""

from qa_assistant.embeddings.neighbours import VectorIndex, nearest_neighbours
from qa_assistant.embeddings.projector import write_projector
from qa_assistant.embeddings.vectors import (
    embedding_from_file,
    initial_embedding,
    load_vectors,
    save_vectors,
)
from qa_assistant.embeddings.word2vec import Word2VecConfig, read_text_corpus, train_word2vec

__all__ = [
    "VectorIndex",
    "Word2VecConfig",
    "embedding_from_file",
    "initial_embedding",
    "load_vectors",
    "nearest_neighbours",
    "read_text_corpus",
    "save_vectors",
    "train_word2vec",
    "write_projector",
]
