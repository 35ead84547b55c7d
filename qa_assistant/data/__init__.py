"""Loading, cleaning and splitting question/answer data.

The names below load their module on first use (PEP 562), so that
`qa_assistant.data.sources` can be imported without TensorFlow: the command line
checks a user's files with it before TensorFlow starts (`cli.commands.precheck_train`).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and editors
    from qa_assistant.data.augment import Augmentation, augment_questions
    from qa_assistant.data.dataset import QAData, load_qa_data
    from qa_assistant.data.prepare import CleanReport, clean_pairs
    from qa_assistant.data.sources import SourceInfo, load_pairs
    from qa_assistant.data.split import Splits, split_classification, split_grouped

_EXPORTS = {
    "Augmentation": "augment",
    "augment_questions": "augment",
    "QAData": "dataset",
    "load_qa_data": "dataset",
    "CleanReport": "prepare",
    "clean_pairs": "prepare",
    "SourceInfo": "sources",
    "load_pairs": "sources",
    "Splits": "split",
    "split_classification": "split",
    "split_grouped": "split",
}

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
