"""The task catalogue: `task.type` -> task class."""

from __future__ import annotations

from qa_assistant.config import Config
from qa_assistant.errors import UserError, closest
from qa_assistant.tasks.base import Task
from qa_assistant.tasks.classify import ClassificationTask
from qa_assistant.tasks.generate import GenerationTask
from qa_assistant.tasks.retrieve import RetrievalTask

_TASKS: dict[str, type[Task]] = {
    ClassificationTask.name: ClassificationTask,
    RetrievalTask.name: RetrievalTask,
    GenerationTask.name: GenerationTask,
}


def task_names() -> list[str]:
    """Names accepted by `task.type`."""
    return sorted(_TASKS)


def get_task(config: Config) -> Task:
    """A task instance for `config.task.type`; `UserError` lists the known types."""
    name = config.task.type
    if name not in _TASKS:
        raise UserError(
            f"unknown task '{name}'{closest(name, task_names())}; expected one of: {', '.join(task_names())}"
        )
    return _TASKS[name](config)


__all__ = ["ClassificationTask", "GenerationTask", "RetrievalTask", "Task", "get_task", "task_names"]
