"""Personalising a pretrained causal language model (`task.type: lm`).

The model (section `lm`) is a small instruct LM, SmolLM2-135M-Instruct by
default, loaded offline through keras-hub (`presets.py` converts its GGUF
file once). Training shows it each training pair as a chat turn
(`tasks/lm/prompt.py`) and computes the loss on the answer's tokens only
(`generator.shifted_pair`); with `lm.lora_rank > 0` only low-rank adapters
of the attention projections learn (LoRA, keras-hub's `enable_lora`), and
the run keeps just those adapters (`adapter.lora.h5`, a few MB) and the name
of the base model; `lm.lora_rank: 0` fine-tunes every weight and keeps the
whole model.

Batches group examples of similar length (`data/pipeline.py`): chat pairs
are short, and padding every example to `lm.max_length` would multiply the
cost of a step.

Answers are decoded by the project's decoding loop with a key/value cache
(`tasks/lm/cached.py`), grounded, when `lm.grounding` says so, in the
user's own answers (`tasks/lm/grounding.py`). A grounded run also trains on
grounded prompts (`training_notes`: retrieval-augmented fine-tuning, the
pair's own answer among shuffled notes most of the time, absent otherwise),
so the model learns to use the notes it will see. Evaluation, the TensorBoard
samples, the baseline and the export are the generation task's: only the
generator differs. With `lm.quote_above`, a grounded run answers with its
first note word for word where the retriever is sure of it
(`tasks/lm/quoting.py`); `auto` chooses where on the validation questions
after training (`finalize`). With `lm.decline_below`, it declines a request
whose first note scores too low to be about the user's data
(`tasks/lm/declining.py`); `auto` sets the threshold on the validation
questions so that a chosen share of in-domain requests is answered.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.atomic import replacing
from qa_assistant.data.dataset import QAData
from qa_assistant.data.pipeline import make_dataset
from qa_assistant.data.prepare import question_key
from qa_assistant.data.split import FEW_VALIDATION_QUESTIONS, Splits, distinct_questions
from qa_assistant.errors import UserError
from qa_assistant.layout import ADAPTER_FILE, LM_FILE, check_grounding, split_file
from qa_assistant.manifest import write_json
from qa_assistant.personalization.sources import InitSource
from qa_assistant.personalization.transfer import TransferReport
from qa_assistant.presets import load_preset_tokenizer, resolve_preset
from qa_assistant.tasks.generation.task import GenerationTask
from qa_assistant.tasks.lm.declining import calibrate as calibrate_decline
from qa_assistant.tasks.lm.generator import LanguageModelGenerator, shifted_pair
from qa_assistant.tasks.lm.grounding import DualEncoderRetriever, TfidfRetriever
from qa_assistant.tasks.lm.lora import enable_lora
from qa_assistant.tasks.lm.memory import check_memory
from qa_assistant.tasks.lm.prompt import ChatPrompt
from qa_assistant.tasks.lm.quoting import calibrate
from qa_assistant.tasks.retrieval.bank import questions_needed
from qa_assistant.text.cleaning import one_line

log = logging.getLogger(__name__)

TARGET_LAYERS = (  # keras-hub's names of the Llama layers that can take adapters
    "query",
    "key",
    "value",
    "attention_output",
    "feedforward_gate_dense",
    "feedforward_intermediate_dense",
    "feedforward_output_dense",
)
_PROMPT_BATCH = 256  # texts tokenised per call when a split is prepared


class LanguageModelTask(GenerationTask):
    """Fine-tuning (LoRA or full) of a pretrained causal LM on question/answer chat turns."""

    name = "lm"
    # 16, not 64: scoring 64 answers of up to 160 tokens holds 2 GB of logits over the
    # 49,152-token vocabulary. Measured on SmolLM2 (the 64 / 16 longest chatterbot test
    # answers, the process's peak): 7.3 / 3.6 GiB, the model loaded taking 2.1.
    score_batch_size = 16

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        unknown = sorted(set(self._targets()) - set(TARGET_LAYERS))
        if unknown:
            raise UserError(
                f"lm.lora_targets names unknown layers {', '.join(unknown)}; "
                f"expected some of {', '.join(TARGET_LAYERS)}"
            )
        lm = config.lm
        if lm.quote_above != "none" and lm.grounding == "none":
            raise UserError(
                f"lm.quote_above '{lm.quote_above}' quotes a grounding note; expected lm.grounding "
                "tfidf or a retrieval run (got none), or lm.quote_above none"
            )
        if lm.decline_below != "none" and lm.grounding == "none":
            raise UserError(
                f"lm.decline_below '{lm.decline_below}' reads the score of a grounding note; expected "
                "lm.grounding tfidf or a retrieval run (got none), or lm.decline_below none"
            )
        self.prompt: ChatPrompt | None = None
        self.retriever: Any | None = None
        self.lm_tokenizer: Any | None = None
        # The threshold in use; `auto` is settled by `finalize` (or read back by `restore`).
        self.quote_above = _fixed_threshold(lm.quote_above)
        self.quoting: dict[str, Any] = {}
        self.decline_below = _fixed_threshold(lm.decline_below)
        self.declining: dict[str, Any] = {}

    def _targets(self) -> list[str]:
        return [t.strip() for t in self.config.lm.lora_targets.split(",") if t.strip()]

    # -- preprocessing -------------------------------------------------------

    def prepare(self, data: QAData) -> None:
        self._load_tokenizer()
        self.retriever = self._retriever(data.splits.train)
        check_memory(
            resolve_preset(self.config.lm.preset),
            full=self.config.lm.lora_rank == 0,
            batch_size=self.config.train.batch_size,
            length=self.example_max_length(),
            length_keys=self._length_keys(),
        )

    def _length_keys(self) -> str:
        lm = self.config.lm
        notes = (
            f" + notes, lm.grounding_k {lm.grounding_k} x lm.grounding_max_tokens {lm.grounding_max_tokens}"
        )
        return f"lm.max_length {lm.max_length}" + (notes if self._grounded_training() else "")

    def _load_tokenizer(self) -> None:
        lm = self.config.lm
        self.lm_tokenizer = load_preset_tokenizer(lm.preset)
        self.prompt = ChatPrompt(
            self.lm_tokenizer, lm.system_prompt, lm.question_max_tokens, lm.grounding_max_tokens
        )

    def _retriever(self, train: pd.DataFrame) -> Any | None:
        """The retriever `lm.grounding` names, or `None`: TF-IDF over the training pairs, or a retrieval run's bank."""
        grounding = self.config.lm.grounding
        if grounding == "none":
            return None
        if grounding == "tfidf":
            return TfidfRetriever(train["question"].tolist(), train["answer"].tolist())
        return run_retriever(grounding)

    # -- training ------------------------------------------------------------

    def dataset(self, frame: pd.DataFrame, *, training: bool) -> tf.data.Dataset:
        inputs, targets = self.examples(frame)
        if training:
            self.tokens_per_epoch = int(tf.reduce_sum(inputs.row_lengths()))
        return make_dataset(
            {"token_ids": inputs, "padding_mask": tf.ones_like(inputs)},
            targets,
            batch_size=self.config.train.batch_size,
            max_length=self.example_max_length(),
            shuffle=training,
            seed=self.config.train.seed,
        )

    def example_max_length(self) -> int:
        """Most tokens of a training example: `lm.max_length`, plus the notes' budget when grounded."""
        lm = self.config.lm
        if not self._grounded_training():
            return lm.max_length
        return lm.max_length + len(self.prompt.notes_header) + lm.grounding_k * (lm.grounding_max_tokens + 2)

    def _grounded_training(self) -> bool:
        return self.retriever is not None and self.config.lm.grounded_training

    def examples(self, frame: pd.DataFrame) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """`(inputs, targets)` ragged ids of `frame`'s pairs as chat turns, at most `example_max_length()` each.

        Prompts are grounded as `lm.grounded_training` says (`training_notes`).
        An example longer than its limit loses the end of its answer (the
        prompt is kept).
        """
        questions, answers = frame["question"].tolist(), frame["answer"].tolist()
        notes = self.training_notes(questions, answers) if self._grounded_training() else None
        pieces = [
            shifted_pair(
                self.prompt.prompt_ids(
                    tf.constant(questions[i : i + _PROMPT_BATCH]),
                    None if notes is None else tf.constant(notes[i : i + _PROMPT_BATCH]),
                ),
                self.prompt.answer_ids(
                    tf.constant(answers[i : i + _PROMPT_BATCH]), self.config.lm.max_length
                ),
            )
            for i in range(0, len(questions), _PROMPT_BATCH)
        ]
        inputs = tf.concat([p[0] for p in pieces], axis=0)
        targets = tf.concat([p[1] for p in pieces], axis=0)
        limit = self.example_max_length()
        cut = int(np.sum(inputs.row_lengths().numpy() > limit))
        inputs, targets = inputs[:, :limit], targets[:, :limit]
        lengths = inputs.row_lengths().numpy()
        log.info(
            "%d chat examples: %d to %d tokens (median %d)%s",
            len(questions),
            lengths.min() if len(lengths) else 0,
            lengths.max() if len(lengths) else 0,
            int(pd.Series(lengths).median()) if len(lengths) else 0,
            f"; {cut} cut to {limit} tokens" if cut else "",
        )
        return inputs, targets

    def training_notes(self, questions: list[str], answers: list[str]) -> np.ndarray:
        """`[n, k]` grounding notes for training pairs (retrieval-augmented fine-tuning).

        Each question's notes are what the retriever finds for it; the pair's
        own answer is among them with probability `lm.gold_note_rate` and
        left out otherwise; the order is shuffled. Seeded by `train.seed`.
        """
        lm = self.config.lm
        k = lm.grounding_k
        random = np.random.default_rng(self.config.train.seed)
        rows = []
        for start in range(0, len(questions), _PROMPT_BATCH):
            found, _ = self.retriever.retrieve(tf.constant(questions[start : start + _PROMPT_BATCH]), k + 1)
            for texts, gold in zip(found.numpy(), answers[start : start + _PROMPT_BATCH], strict=True):
                # A retrieval run may lower-case its bank, or hold the one-line form of an answer
                # (trained before answers kept their lines): the pair's own answer in any form is gold.
                key = one_line(gold).lower()
                others = [t for t in (t.decode("utf-8") for t in texts) if t and one_line(t).lower() != key]
                notes = ([gold, *others[: k - 1]]) if random.random() < lm.gold_note_rate else others[:k]
                random.shuffle(notes)
                rows.append(notes + [""] * (k - len(notes)))
        return np.asarray(rows, dtype=object).reshape(len(questions), k)

    def build_model(self) -> keras.Model:
        import keras_hub  # deferred: start-up time

        lm = self.config.lm
        try:
            model = keras_hub.models.CausalLM.from_preset(resolve_preset(lm.preset), preprocessor=None)
        except (ValueError, OSError, KeyError) as error:
            raise UserError(f"cannot load the causal LM of lm.preset '{lm.preset}': {error}") from None
        if lm.lora_rank > 0:
            enable_lora(model.backbone, lm.lora_rank, self._targets())
        trainable = sum(int(tf.size(w)) for w in model.trainable_weights)
        log.info(
            "causal LM %s: %s parameters, %s trainable (%s)",
            lm.preset,
            f"{model.count_params():,}",
            f"{trainable:,}",
            f"LoRA rank {lm.lora_rank} on {lm.lora_targets}" if lm.lora_rank else "full fine-tuning",
        )
        return model

    def initialize_weights(self, model: keras.Model, source: InitSource) -> TransferReport | None:
        """Starts from another LM run's adapters (`--init-from RUN`); `None` for other sources."""
        adapter = source.path / ADAPTER_FILE if source.path is not None else None
        if adapter is None or not adapter.is_file():
            return None
        if self.config.lm.lora_rank == 0:
            raise UserError(
                f"--init-from '{source.spec}' holds LoRA adapters; expected lm.lora_rank > 0 to load them"
            )
        _load_adapter(model, adapter, source.spec)
        names = [w.path for w in model.trainable_weights]
        return TransferReport(loaded=names)

    # -- evaluation ----------------------------------------------------------

    def generator(self, model: keras.Model) -> LanguageModelGenerator:
        if self._generator is None or self._generator[0] is not model:
            lm = self.config.lm
            generator = LanguageModelGenerator(
                model,
                self.prompt,
                self.config.decoding,
                max_new_tokens=self.config.decoder.max_length,
                retriever=self.retriever,
                grounding_k=lm.grounding_k,
                answer_max_tokens=lm.max_length,
                quote_above=self.quote_above,
                decline_below=self.decline_below,
                decline_answer=lm.decline_answer,
            )
            self._generator = (model, generator)
        return self._generator[1]

    def finalize(self, model: keras.Model, splits: Splits) -> None:
        """Sets the `auto` thresholds of `lm.decline_below` and `lm.quote_above` on the validation questions.

        The decline threshold comes from the retriever alone
        (`_choose_decline`); the quote threshold from the model's answers,
        never declined while it is chosen (`_choose_quote`).
        """
        if self.config.lm.decline_below == "auto":
            self._choose_decline(splits.validation)
        if self.config.lm.quote_above == "auto":
            chosen, self.decline_below = self.decline_below, None
            try:
                self._choose_quote(model, splits.validation)
            finally:
                self.decline_below, self._generator = chosen, None

    def _choose_decline(self, validation: pd.DataFrame) -> None:
        """`lm.decline_below: auto`: the conformal threshold of the validation questions' first-note scores."""
        keep = self.config.lm.decline_keep
        choice = calibrate_decline(self.retriever, validation, keep)
        self.decline_below, self._generator = choice.threshold, None
        self.declining = dataclasses.asdict(choice)
        if keep >= 1:
            log.info("lm.decline_below auto: lm.decline_keep 1 answers every request; declining nothing")
        elif choice.threshold is None:
            log.warning(
                "lm.decline_below auto: declining nothing: %d validation questions cannot promise that %.0f%% "
                "of in-domain requests are answered (it needs at least %d); raise data.validation_fraction, "
                "lower lm.decline_keep, or set lm.decline_below to a number",
                choice.questions,
                100 * keep,
                questions_needed(keep),
            )
        else:
            log.info(
                "lm.decline_below auto: declining requests whose first note scores below %.4f (the %d. lowest "
                "of %d validation questions: at least %.1f%% of in-domain requests answered on average)",
                choice.threshold,
                choice.rank,
                choice.questions,
                100 * choice.guaranteed_keep,
            )
            self._warn_about_decline_scores(validation)

    def _warn_about_decline_scores(self, validation: pd.DataFrame) -> None:
        """Says when the validation questions' scores cannot stand for a new request's."""
        grounding = self.config.lm.grounding
        if grounding == "tfidf":
            log.warning(
                "lm.decline_below auto with lm.grounding tfidf: word overlap tells off-topic requests from "
                'in-domain ones poorly, so few off-topic requests are declined (BENCHMARKS.md, "Declining '
                'off-topic requests"); a retrieval run as lm.grounding separates them far better'
            )
            return
        trained = pd.read_json(split_file(Path(grounding), "train"), lines=True, dtype=False)
        questions = validation["question"].drop_duplicates()
        seen = int(question_key(questions).isin(set(question_key(trained["question"]))).sum())
        if seen:
            log.warning(
                "lm.decline_below auto: %d of the %d validation questions are training questions of the "
                "grounding run '%s': they score higher than a new request would, so the threshold declines "
                "more in-domain requests than promised; train the retrieval run on the same data, split and "
                "seed as this run",
                seen,
                len(questions),
                grounding,
            )

    def _choose_quote(self, model: keras.Model, validation: pd.DataFrame) -> None:
        """`lm.quote_above: auto`: chooses the quote threshold on the validation questions (`quoting.calibrate`).

        Each validation question is answered by the model from its notes,
        and the threshold whose quote-or-generate replies score best there
        (ROUGE-L) is kept; with no validation questions, or where quoting
        never helps, nothing is quoted. The log and `lm.json` say what was
        chosen and what it gave.
        """
        self.quote_above, self._generator = None, None  # the model's own answers first
        log.info(
            "lm.quote_above auto: answering the %d validation questions to choose the threshold",
            distinct_questions(validation),
        )
        choice = calibrate(self.generator(model), validation)
        self.quote_above, self._generator = choice.threshold, None
        self.quoting = dataclasses.asdict(choice)
        if choice.threshold is None:
            log.info(
                "lm.quote_above auto: never quoting (on %d validation questions quoting did not raise "
                "ROUGE-L above the model's own answers' %.3f)",
                choice.questions,
                choice.generated_rouge_l,
            )
        else:
            log.info(
                "lm.quote_above auto: quoting the first note at score >= %.4f (%.0f%% of %d validation "
                "questions); validation ROUGE-L %.3f, against %.3f generating always and %.3f quoting always",
                choice.threshold,
                100 * choice.quoted_share,
                choice.questions,
                choice.routed_rouge_l,
                choice.generated_rouge_l,
                choice.quoted_rouge_l,
            )
        if 0 < choice.questions < FEW_VALIDATION_QUESTIONS:
            log.warning(
                "lm.quote_above auto chose on %d validation questions (one question moves their mean ROUGE-L "
                "by up to %.0f points); expected at least %d: another split or seed may choose another threshold. "
                "Raise data.validation_fraction, or set lm.quote_above to a number",
                choice.questions,
                100 / choice.questions,
                FEW_VALIDATION_QUESTIONS,
            )

    def projector_embeddings(self, model: keras.Model) -> dict[str, Any]:
        del model  # 49,152 subword rows of a pretrained model: not what a user explores
        return {}

    # -- persistence ---------------------------------------------------------

    def save_model(self, model: keras.Model, run_dir: Path) -> None:
        """The LoRA adapters alone (keras-hub's `save_lora_weights` format), or the whole model."""
        if self.config.lm.lora_rank == 0:
            super().save_model(model, run_dir)
            return
        # keras-hub insists on the ".lora.h5" ending, which a temporary name keeps.
        with replacing(run_dir / ADAPTER_FILE) as tmp:
            model.backbone.save_lora_weights(str(tmp))

    def read_model(self, run_dir: Path) -> keras.Model:
        if self.config.lm.lora_rank == 0:
            return super().read_model(run_dir)
        model = self.build_model()
        _load_adapter(model, run_dir / ADAPTER_FILE, str(run_dir))
        return model

    def save(self, directory: Path) -> None:
        write_json(
            directory / LM_FILE,
            {
                "preset": self.config.lm.preset,
                "resolved": resolve_preset(self.config.lm.preset),
                "quote_above": self.quote_above,
                "quoting": self.quoting,
                "decline_below": self.decline_below,
                "declining": self.declining,
            },
        )

    def restore(self, directory: Path) -> None:
        state = json.loads((directory / LM_FILE).read_text(encoding="utf-8"))
        # Runs saved before `lm.quote_above` existed hold no threshold: they never quote.
        self.quote_above = state.get("quote_above")
        self.quoting = state.get("quoting", {})
        # Nor, before `lm.decline_below`, a decline threshold: they answer every request.
        self.decline_below = state.get("decline_below")
        self.declining = state.get("declining", {})
        self._load_tokenizer()
        train = pd.read_json(split_file(directory, "train"), lines=True, dtype=False)
        self.retriever = self._retriever(train)


def _fixed_threshold(value: str) -> float | None:
    """A threshold key's number; `None` for `none` and for `auto` (which `finalize` settles)."""
    return None if value in ("none", "auto") else float(value)


def _load_adapter(model: keras.Model, adapter: Path, spec: str) -> None:
    """Loads keras-hub LoRA weights into `model`'s backbone; a rank or layout mismatch is a `UserError`."""
    try:
        model.backbone.load_lora_weights(str(adapter))
    except (ValueError, KeyError, OSError) as error:
        raise UserError(
            f"cannot load the LoRA adapters of '{spec}' ({adapter.name}): {str(error).splitlines()[0]}"
        ) from None


def run_retriever(run_dir: str) -> Any:
    """A dual-encoder retriever from a finished retrieval run (`lm.grounding: RUN_DIR`).

    It searches the run's own answer bank (every answer of the run's data),
    exactly what the run's export answers from: the user's answers are
    grounding notes whether or not the LM was trained on their questions.
    """
    # Imported here: the task catalogue (which `tasks.runs` reads) imports this module.
    from qa_assistant.tasks.runs import load_run

    check_grounding(run_dir)
    config, task, model = load_run(run_dir)
    if config.task.type != "retrieve":
        raise UserError(
            f"lm.grounding '{run_dir}' is a {config.task.type} run; expected a retrieval run, tfidf or none"
        )
    return DualEncoderRetriever(task, model)
