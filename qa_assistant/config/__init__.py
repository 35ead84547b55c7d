"""Typed run configuration: the schema (`schema.py`) and building it from YAML and overrides (`loading.py`)."""

from qa_assistant.config.loading import (
    answer_limit,
    check_decoding_options,
    check_trains,
    from_dict,
    load_config,
    parse_override,
)
from qa_assistant.config.schema import (
    AugmentConfig,
    Config,
    DataConfig,
    DecoderConfig,
    DecodingConfig,
    EmbeddingConfig,
    EncoderConfig,
    ExportConfig,
    InitConfig,
    LanguageModelConfig,
    TaskConfig,
    TensorBoardConfig,
    TextConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig",
    "Config",
    "DataConfig",
    "DecoderConfig",
    "DecodingConfig",
    "EmbeddingConfig",
    "EncoderConfig",
    "ExportConfig",
    "InitConfig",
    "LanguageModelConfig",
    "TaskConfig",
    "TensorBoardConfig",
    "TextConfig",
    "TrainConfig",
    "answer_limit",
    "check_decoding_options",
    "check_trains",
    "from_dict",
    "load_config",
    "parse_override",
]
