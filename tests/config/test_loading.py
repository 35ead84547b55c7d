from pathlib import Path

import pytest
import yaml

from qa_assistant.config import Config, check_decoding_options, check_trains, from_dict, load_config
from qa_assistant.errors import UserError


def test_defaults_are_valid_and_round_trip(tmp_path: Path) -> None:
    config = load_config([])
    assert config.task.type == "classify"
    assert config.encoder.type == "gru"
    path = tmp_path / "c.yaml"
    config.save(path)
    assert load_config([path]) == config


def test_files_merge_left_to_right_and_overrides_win(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("encoder: {type: lstm, units: 64}\ntrain: {epochs: 3}\n")
    b.write_text("encoder: {units: 32}\n")
    config = load_config([a, b], ["train.epochs=7", "encoder.bidirectional=true"])
    assert (config.encoder.type, config.encoder.units, config.train.epochs) == ("lstm", 32, 7)
    assert config.encoder.bidirectional is True


def test_exponent_without_a_dot_is_a_number(tmp_path: Path) -> None:
    # YAML 1.1 reads 5e-5 as a string; in a file or an override a user means 0.00005.
    path = tmp_path / "c.yaml"
    path.write_text("train: {learning_rate: 5e-5}\n")
    assert load_config([path]).train.learning_rate == pytest.approx(5e-5)
    assert load_config([], ["train.learning_rate=2E-4"]).train.learning_rate == pytest.approx(2e-4)
    with pytest.raises(UserError, match="expects a number; got 'fast'"):
        load_config([], ["train.learning_rate=fast"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("encoder.unit=3", "unknown config key 'encoder.unit' in section 'encoder' (did you mean 'units'?)"),
        ("nosuch.key=1", "unknown config key 'nosuch'"),
        ("encoder.units=-3", "config key 'encoder.units' must be at least 1; got -3"),
        ("train.batch_size=0", "config key 'train.batch_size' must be at least 1; got 0"),
        ("encoder.dropout=1.0", "config key 'encoder.dropout' must be in [0, 1); got 1.0"),
        ("encoder.units=abc", "config key 'encoder.units' expects an integer; got 'abc'"),
        ("train.learning_rate=0", "must be greater than 0"),
        ("text.normalize=nfc", "expected one of: nfkc, none"),
        ("encoder.bidirectional=3", "expects true or false"),
        ("novalue", "is not of the form section.key=value"),
        ("embedding.dropout=1", "config key 'embedding.dropout' must be in [0, 1); got 1.0"),
        (
            "encoder.recurrent_dropout=-0.1",
            "config key 'encoder.recurrent_dropout' must be in [0, 1); got -0.1",
        ),
        ("train.seed=-1", "config key 'train.seed' must be at least 0; got -1"),
        ("train.seed=4294967296", "config key 'train.seed' must be at most 4294967295; got 4294967296"),
        ("train.epochs=0", "config key 'train.epochs' must be at least 1; got 0"),
        ("train.learning_rate=.nan", "config key 'train.learning_rate' expects a number; got nan"),
        ("train.epochs.x=1", "config key 'train.epochs' expects an integer; got {'x': 1}"),
        (
            "encoder.freeze=some",
            "config key 'encoder.freeze' got 'some'; expected none, embedding, all or a number",
        ),
        ("text.tokenizer=bpe", "expected one of: word, wordpiece"),
        (
            "encoder.type=gur",
            "config key 'encoder.type' got 'gur' (did you mean 'gru'?); "
            "expected one of: gru, lstm, cnn, transformer, pretrained",
        ),
        ("decoder.type=cnn", "config key 'decoder.type' got 'cnn'; expected one of: gru, lstm, transformer"),
        ("task.type=retrieval", "config key 'task.type' got 'retrieval' (did you mean 'retrieve'?)"),
        ("task.loss=hinge", "expected one of: softmax, symmetric, sigmoid"),
        ("task.temperature=0", "must be greater than 0"),
        ("decoder.attention=dot", "expected one of: bahdanau, luong, none"),
        ("decoding.strategy=nucleus", "expected one of: greedy, beam, sample"),
        ("decoding.top_p=1.5", "config key 'decoding.top_p' must be at most 1.0; got 1.5"),
        ("decoding.temperature=-1", "config key 'decoding.temperature' must be at least 0.0; got -1"),
        ("decoder.max_length=1", "config key 'decoder.max_length' must be at least 2; got 1"),
        ("decoding.no_repeat_ngram=-1", "config key 'decoding.no_repeat_ngram' must be at least 0; got -1"),
        ("decoding.repetition_penalty=0", "config key 'decoding.repetition_penalty' must be greater than 0"),
        ("decoding.min_length=0", "config key 'decoding.min_length' must be at least 1; got 0"),
        ("decoding.beam_width=65", "config key 'decoding.beam_width' must be at most 64; got 65"),
        (
            "train.monitor=val_rouge_l",
            "train.monitor val_rouge_l scores generated answers; task.type is 'classify'",
        ),
        ("train.monitor=val_mrr", "train.monitor val_mrr ranks the answer bank; task.type is 'classify'"),
        ("train.monitor_from_epoch=-1", "config key 'train.monitor_from_epoch' must be at least 0; got -1"),
        (
            "lm.lora_targets=Query!",
            "config key 'lm.lora_targets' got 'Query!'; expected comma-separated layer names, e.g. query,value",
        ),
        ("lm.quote_above=often", "config key 'lm.quote_above' got 'often'; expected none, auto or a number"),
        (
            "lm.decline_below=rarely",
            "config key 'lm.decline_below' got 'rarely'; expected none, auto or a number",
        ),
        ("lm.decline_keep=0", "config key 'lm.decline_keep' must be greater than 0; got 0.0"),
    ],
)
def test_bad_values_name_key_value_and_expectation(override: str, message: str) -> None:
    with pytest.raises(UserError) as error:
        load_config([], [override])
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("task", "named", "instead"),
    [
        ("retrieve", "val_in_batch_accuracy, within each batch of answers", "expected val_mrr"),
        ("generate", "val_token_accuracy, next tokens under teacher forcing", "expected val_rouge_l"),
        ("lm", "val_token_accuracy", "expected val_loss"),
    ],
)
def test_val_accuracy_is_a_classifiers_and_other_tasks_are_told_what_theirs_is(
    task: str, named: str, instead: str
) -> None:
    # A config saved before the per-epoch metrics were renamed still loads (to evaluate, export, index) ...
    saved = load_config([], [f"task.type={task}", "train.monitor=val_accuracy"])
    assert from_dict(yaml.safe_load(yaml.safe_dump(saved.to_dict()))).train.monitor == "val_accuracy"
    # ... but does not train.
    with pytest.raises(UserError) as error:
        check_trains(saved)
    assert named in str(error.value)
    assert instead in str(error.value)
    check_trains(load_config([], [f"task.type={task}", "train.monitor=val_loss"]))
    check_trains(load_config([], ["task.type=classify", "train.monitor=val_accuracy"]))


def test_a_minimum_answer_length_above_the_maximum_is_refused() -> None:
    with pytest.raises(UserError, match=r"decoding.min_length \(9\) is above decoding.max_length \(8\)"):
        load_config([], ["decoding.min_length=9", "decoding.max_length=8"])
    assert load_config([], ["decoding.min_length=8", "decoding.max_length=8"]).decoding.min_length == 8


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(UserError, match=r"expected one of: .*bidirectional.*units"):
        load_config([], ["encoder.widht=3"])


def test_early_stopping_accepts_false_and_true() -> None:
    assert load_config([], ["train.early_stopping=false"]).train.early_stopping == 0
    assert load_config([], ["train.early_stopping=true"]).train.early_stopping == 5
    assert load_config([], ["train.early_stopping=0"]).train.early_stopping == 0


def test_jit_compile_accepts_yaml_booleans() -> None:
    assert load_config([], ["train.jit_compile=true"]).train.jit_compile == "true"
    assert load_config([], ["train.jit_compile=false"]).train.jit_compile == "false"


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"missing\.yaml' does not exist; expected a YAML file"):
        load_config([tmp_path / "missing.yaml"])
    with pytest.raises(UserError, match="is a directory"):
        load_config([tmp_path])
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config([bad])
    twice = tmp_path / "twice.yaml"
    twice.write_text("encoder:\n  units: 8\ntrain:\n  epochs: 2\nencoder:\n  units: 16\n")
    with pytest.raises(UserError, match=r"not valid YAML: key 'encoder' appears twice \(line 5\)"):
        load_config([twice])
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  epochs: 2\n  epochs: 3\n")
    with pytest.raises(UserError, match="key 'epochs' appears twice"):
        load_config([nested])
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="must hold a mapping"):
        load_config([listy])


def test_section_must_be_mapping() -> None:
    with pytest.raises(UserError, match="config section 'encoder' must be a mapping"):
        from_dict({"encoder": 3})


def test_flat_view_lists_every_leaf() -> None:
    flat = Config().flat()
    assert flat["encoder.type"] == "gru"
    assert flat["train.seed"] == 42


def test_shipped_configs_load() -> None:
    configs = sorted((Path(__file__).parents[2] / "experiments" / "configs").glob("*.yaml"))
    assert configs, "experiments/configs is empty"
    for path in configs:
        load_config([path])
        assert isinstance(yaml.safe_load(path.read_text()), dict)


def test_split_fractions_must_leave_training_data() -> None:
    with pytest.raises(
        UserError, match=r"validation_fraction \+ data.test_fraction must be below 1.*got 0.5 \+ 0.5"
    ):
        load_config([], ["data.validation_fraction=0.5", "data.test_fraction=0.5"])
    # With a test file the test fraction is not used.
    config = load_config([], ["data.validation_fraction=0.5", "data.test_fraction=0.5", "data.test=t.csv"])
    assert config.data.test == "t.csv"


def test_a_target_naming_the_answer_column_by_its_file_name_is_refused_with_the_fix() -> None:
    # The loader renames data.answer_column to "answer": "reply" would be no column at all.
    with pytest.raises(
        UserError,
        match=r"'data\.target' got 'reply', which is data\.answer_column; expected data\.target=answer",
    ):
        load_config([], ["data.answer_column=reply", "data.target=reply"])
    assert load_config([], ["data.answer_column=reply", "data.target=answer"]).data.target == "answer"
    assert load_config([], ["data.answer_column=reply", "data.target=category"]).data.target == "category"


def test_generation_sections_default_to_the_encoder() -> None:
    config = load_config([], ["task.type=generate", "decoding.strategy=beam", "decoder.units=null"])
    assert (config.decoder.type, config.decoder.units, config.decoder.attention) == ("gru", None, "bahdanau")
    assert (config.decoding.strategy, config.decoding.max_length) == ("beam", None)


def test_type_choices_are_the_catalogues_names() -> None:
    """The schema repeats each catalogue's names (to check them before TensorFlow loads): the same set."""
    from dataclasses import fields

    from qa_assistant.config.schema import DecoderConfig, EncoderConfig, TaskConfig
    from qa_assistant.models.decoders import CATALOGUE as DECODERS
    from qa_assistant.models.encoders.registry import CATALOGUE as ENCODERS
    from qa_assistant.tasks import task_names

    def choices(section: type) -> list[str]:
        return sorted(next(f for f in fields(section) if f.name == "type").metadata["choices"])

    assert choices(EncoderConfig) == ENCODERS.names()
    assert choices(DecoderConfig) == DECODERS.names()
    assert choices(TaskConfig) == task_names()


def test_a_language_model_has_no_head_learning_rate() -> None:
    with pytest.raises(
        UserError, match=r"a language model has no separate head \(expected null for task.type lm\)"
    ):
        load_config([], ["task.type=lm", "train.head_learning_rate=0.001"])
    assert (
        load_config([], ["task.type=generate", "train.head_learning_rate=0.001"]).train.head_learning_rate
        == 0.001
    )


@pytest.mark.parametrize("key", ["max_length", "min_length"])
def test_decoding_lengths_past_the_decoders_are_refused_before_training(key: str) -> None:
    saved = load_config([], ["task.type=generate", "decoder.max_length=48", f"decoding.{key}=49"])
    assert (
        getattr(from_dict(yaml.safe_load(yaml.safe_dump(saved.to_dict()))).decoding, key) == 49
    )  # still loads
    with pytest.raises(UserError, match=rf"decoding.{key} \(49\) is above decoder.max_length \(48\)"):
        check_trains(saved)
    check_trains(load_config([], ["task.type=generate", "decoder.max_length=48", f"decoding.{key}=48"]))


def test_per_request_lengths_past_the_models_are_refused() -> None:
    with pytest.raises(
        UserError, match=r"decoding option min_length \(70\) is above the model's decoder.max_length"
    ):
        check_decoding_options({"min_length": 70}, longest=64)
    with pytest.raises(UserError, match=r"decoding option max_length \(100\) is above"):
        check_decoding_options({"max_length": 100}, longest=64)
    assert check_decoding_options({"max_length": 64, "min_length": 3}, longest=64) == {
        "max_length": 64,
        "min_length": 3,
    }
    assert check_decoding_options({"max_length": 100}) == {
        "max_length": 100
    }  # no limit known: the export clamps
