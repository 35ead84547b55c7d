"""Fold intervals and the paired bootstrap, checked against what they must do."""

import math

import numpy as np
import pytest
from scipy import stats

from qa_assistant.analysis.statistics import (
    corrected_paired_ttest,
    fold_summary,
    holm,
    paired_bootstrap,
    resample_means,
)


def test_fold_summary_is_the_corrected_resampled_t_interval() -> None:
    values = [0.61, 0.55, 0.58, 0.66, 0.52, 0.60]
    ratio = 0.25  # 5 folds: test/train = 1/4
    s = fold_summary(values, test_train_ratio=ratio)
    sd = np.std(values, ddof=1)
    half = stats.t.ppf(0.975, df=5) * sd * math.sqrt(1 / 6 + ratio)
    assert s.mean == pytest.approx(np.mean(values))
    assert s.std == pytest.approx(sd)
    assert (s.ci_low, s.ci_high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert s.n == 6
    plain = fold_summary(values)  # independent runs: the ordinary t-interval, narrower
    assert plain.ci_high - plain.ci_low == pytest.approx(2 * stats.t.ppf(0.975, df=5) * sd / math.sqrt(6))
    assert plain.ci_high - plain.ci_low < s.ci_high - s.ci_low
    assert s.shown() == f"{np.mean(values):.3f} ± {sd:.3f}"


def test_one_run_has_no_interval() -> None:
    s = fold_summary([0.7], test_train_ratio=0.25)
    assert (s.mean, s.std, s.n) == (0.7, 0.0, 1)
    assert math.isnan(s.ci_low)
    assert s.shown_interval() == ""


def test_corrected_interval_covers_the_truth_about_95_percent_of_the_time_for_independent_draws() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        s = fold_summary(rng.normal(0.5, 0.1, size=5))
        hits += s.ci_low <= 0.5 <= s.ci_high
    assert 0.93 < hits / 2000 < 0.97


def test_bootstrap_sees_a_real_difference_and_not_a_coin_flip() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(300) < 0.5
    better = a | (rng.random(300) < 0.3)  # B is right wherever A is, and on some more
    r = paired_bootstrap(a, better, samples=4000, seed=0)
    assert r.delta == pytest.approx(better.mean() - a.mean())
    assert r.ci_low > 0
    assert r.p_value < 0.001
    same = paired_bootstrap(a, rng.permutation(a), samples=4000, seed=0)  # same accuracy, other questions
    assert same.delta == 0
    assert same.p_value > 0.5
    assert same.ci_low < 0 < same.ci_high


def test_bootstrap_is_seeded_and_refuses_unpaired_scores() -> None:
    a, b = [0, 1, 1, 0, 1], [1, 1, 1, 0, 0]
    assert paired_bootstrap(a, b, samples=500, seed=3) == paired_bootstrap(a, b, samples=500, seed=3)
    with pytest.raises(ValueError, match="two equal, non-empty lists; got 5 and 4"):
        paired_bootstrap(a, b[:4])
    with pytest.raises(ValueError, match="groups must name the question of each of the 5 scores"):
        paired_bootstrap(a, b, groups=["q"] * 4)


def test_the_bootstrap_resamples_questions_with_all_their_rows() -> None:
    # One question in 9 rows scoring 1, another in 1 row scoring 0. Drawing 2 questions gives
    # 18/18, 9/10 or 0/2; drawing rows would give any k/10.
    values = np.array([1.0] * 9 + [0.0])
    means = resample_means(values, ["joke"] * 9 + ["hi"], samples=2000, seed=0)
    assert set(np.unique(means).round(6)) == {0.0, 0.9, 1.0}
    rows = resample_means(values, None, samples=2000, seed=0)
    assert len(np.unique(rows)) > 3


def test_rows_of_one_question_do_not_narrow_the_interval() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random(40) < 0.5, rng.random(40) < 0.6
    questions = np.repeat(np.arange(40), 10)  # each question in 10 identical rows
    by_question = paired_bootstrap(np.repeat(a, 10), np.repeat(b, 10), samples=4000, groups=questions)
    alone = paired_bootstrap(a, b, samples=4000)
    by_row = paired_bootstrap(np.repeat(a, 10), np.repeat(b, 10), samples=4000)
    assert by_question.n == alone.n == 40
    assert by_question.delta == pytest.approx(alone.delta)
    width = by_question.ci_high - by_question.ci_low
    assert width == pytest.approx(alone.ci_high - alone.ci_low, rel=0.2)
    assert by_row.ci_high - by_row.ci_low < width / 2  # rows as samples: about 1/sqrt(10) as wide


def test_the_corrected_paired_t_test_widens_the_ordinary_one_by_the_fold_overlap() -> None:
    a = [0.50, 0.52, 0.55, 0.40, 0.47, 0.51]
    b = [0.60, 0.50, 0.66, 0.45, 0.49, 0.58]
    plain = corrected_paired_ttest(a, b)
    reference = stats.ttest_rel(b, a)
    assert (plain.t, plain.p_value) == pytest.approx((reference.statistic, reference.pvalue))
    corrected = corrected_paired_ttest(a, b, test_train_ratio=0.5)  # 3 folds: test/train = 1/2
    d = np.subtract(b, a)
    t = d.mean() / (d.std(ddof=1) * math.sqrt(1 / 6 + 0.5))
    assert corrected.t == pytest.approx(t)
    assert corrected.p_value == pytest.approx(2 * stats.t.sf(t, df=5))
    assert corrected.p_value > plain.p_value
    assert corrected_paired_ttest([0.3, 0.4], [0.3, 0.4]).p_value == 1.0
    assert math.isnan(corrected_paired_ttest([0.3], [0.5]).p_value)


def test_the_paired_interval_excludes_zero_exactly_when_p_is_below_the_level() -> None:
    a = [0.50, 0.52, 0.55, 0.40, 0.47]
    b = [0.53, 0.50, 0.60, 0.44, 0.47]
    test = corrected_paired_ttest(a, b, test_train_ratio=0.25)
    assert test.ci_low < 0 < test.ci_high
    assert test.p_value > 0.05
    assert (test.ci_low + test.ci_high) / 2 == pytest.approx(test.delta)
    # Shift every B score so the mean difference equals the half-width: the spread
    # is unchanged, so p must land on the level exactly, and beyond it below it.
    shift = test.detectable - test.delta
    at_edge = corrected_paired_ttest(a, [x + shift for x in b], test_train_ratio=0.25)
    assert at_edge.p_value == pytest.approx(0.05)
    assert at_edge.ci_low == pytest.approx(0.0, abs=1e-12)
    beyond = corrected_paired_ttest(a, [x + shift + 0.001 for x in b], test_train_ratio=0.25)
    assert beyond.p_value < 0.05
    assert beyond.ci_low > 0
    assert math.isnan(corrected_paired_ttest([0.3], [0.5]).ci_low)


def test_holm_multiplies_the_kth_smallest_p_by_m_minus_k_and_never_lets_a_larger_p_drop() -> None:
    adjusted = holm([0.04, 0.01, math.nan, 0.03, 0.5])
    # m = 4 tests: 0.01 x 4, 0.03 x 3, 0.04 x 2 = 0.08 raised to the 0.09 before it, 0.5 x 1.
    assert adjusted[:2] + adjusted[3:] == pytest.approx([0.09, 0.04, 0.09, 0.5])
    assert math.isnan(adjusted[2])
    assert holm([0.6, 0.7]) == [1.0, 1.0]
