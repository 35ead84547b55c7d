"""Loading, cleaning and splitting question/answer data."""

from qa_assistant.data.augment import Augmentation, augment_questions
from qa_assistant.data.dataset import QAData, load_qa_data
from qa_assistant.data.prepare import CleanReport, clean_pairs
from qa_assistant.data.sources import SourceInfo, load_pairs
from qa_assistant.data.split import Splits, split_classification, split_grouped

__all__ = [
    "Augmentation",
    "CleanReport",
    "QAData",
    "SourceInfo",
    "Splits",
    "augment_questions",
    "clean_pairs",
    "load_pairs",
    "load_qa_data",
    "split_classification",
    "split_grouped",
]
