"""`qa-assistant tune`: hyper-parameter search with a k-fold objective on the training data alone.

    OUTPUT/
      pool.jsonl          the pairs the search may see: the config's training and validation
                          split (its test split, or its test file, is left out), cleaned
      study.db            the Optuna study (SQLite): rerunning the command resumes it
      trials/NAME/        one k-fold parent per trial (seed-S/fold-I run directories, kfold.json;
                          seed-S+1/fold-I for the trials scored on the second partition)
      hparams/NAME/       one TensorBoard HParams session per trial: the searched values and
                          the objective (`qa-assistant tensorboard OUTPUT/hparams`)
      trials.md           every trial: values, objective mean ± std over folds, state, time
      tune.json           the same for scripts, with the search space and the best trial
      best.yaml           the starting config with the best trial's values: train it as usual

**Objective.** Each trial trains the config with its values on K folds of
the pool (`data.folds`; each fold's validation, for early stopping, comes
from the other folds) and scores the held-out fold with the task's headline
metric (`--metric`). The objective is the mean over folds. The reported test
split never takes part: the pool is what `qa-assistant train` would train
and validate on, so training `best.yaml` afterwards reports on data the
search never saw.

**Search.** Optuna's TPE sampler (seeded), with the starting config's own
values as the first trial, so the best config is never worse than the
default it started from on the scores it is chosen by. A trial whose running mean
after two folds falls below the median of earlier trials at that point is
pruned (`MedianPruner`).

**Confirmation.** The best of many noisy K-fold scores flatters its trial
(the winner's curse). So the `confirm` best complete trials and the starting
config are trained again on the same pool cut into K other folds
(`train.seed` + 1: other held-out questions, other initial weights), and
`best.yaml` takes the one with the best mean over both partitions' 2K
folds. The search keeps back the time this needs, at most a third of the
budget (fewer trials are checked when more would not fit; none when the
best trial and the starting config would not); the scores are kept in the
study. If the budget ends during the check, `best.yaml` is chosen on the
search's scores and says so, and rerunning the command finishes it.

**Budget and resuming.** No trial starts when the time left (`--budget`)
is shorter than the trials so far have taken on average, no fold starts
when it would not fit, and a fold's training stops after the batch that
passes the budget less the mean time fresh folds spent after training
(`callbacks.Deadline`; its run directory stays resumable from its last
epoch), which leaves the evaluation that ends a fold its time. Stopped, failed and interrupted
trials are queued again when the command is rerun with the same arguments; their
finished folds are reused and an unfinished one resumes (a trial's
directory is named after its values). The evaluation that ends a fold is
not interrupted: one slower than the mean can still pass the budget.
"""

from qa_assistant.analysis.tune.outputs import (
    BEST_YAML,
    HPARAMS_DIR,
    POOL_FILE,
    STUDY_FILE,
    TRIALS_DIR,
    TRIALS_TABLE,
    TUNE_JSON,
    TrialRecord,
    TuneResult,
    trial_name,
    trials_table,
)
from qa_assistant.analysis.tune.search import tune
from qa_assistant.analysis.tune.space import (
    Param,
    best_config,
    check_space,
    default_space,
    parse_param,
    parse_space,
    trial_config,
    write_pool,
)

__all__ = [
    "BEST_YAML",
    "HPARAMS_DIR",
    "POOL_FILE",
    "STUDY_FILE",
    "TRIALS_DIR",
    "TRIALS_TABLE",
    "TUNE_JSON",
    "Param",
    "TrialRecord",
    "TuneResult",
    "best_config",
    "check_space",
    "default_space",
    "parse_param",
    "parse_space",
    "trial_config",
    "trial_name",
    "trials_table",
    "tune",
    "write_pool",
]
