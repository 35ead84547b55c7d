"""The task catalogue: `task.type` -> task class."""

from __future__ import annotations

from qa_assistant.catalogue import Catalogue
from qa_assistant.config import Config
from qa_assistant.tasks.base import Task
from qa_assistant.tasks.classify import ClassificationTask
from qa_assistant.tasks.generation.task import GenerationTask
from qa_assistant.tasks.lm.task import LanguageModelTask
from qa_assistant.tasks.retrieval.task import RetrievalTask

_TASKS: Catalogue[type[Task]] = Catalogue("task")
for _task in (ClassificationTask, RetrievalTask, GenerationTask, LanguageModelTask):
    _TASKS.register(_task.name)(_task)


def task_names() -> list[str]:
    """Names accepted by `task.type`."""
    return _TASKS.names()


def get_task(config: Config) -> Task:
    """A task instance for `config.task.type`; `UserError` lists the known types."""
    return _TASKS.get(config.task.type)(config)


__all__ = [
    "ClassificationTask",
    "GenerationTask",
    "LanguageModelTask",
    "RetrievalTask",
    "Task",
    "get_task",
    "task_names",
]
