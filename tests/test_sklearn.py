"""scikit-learn takes ``node.random_state()`` (and ``node.seed_int(32)``): estimators,
``cross_val_score`` and ``GridSearchCV`` give identical results with ``n_jobs`` 1 and 2,
with the real scikit-learn and its real loky workers."""

from __future__ import annotations

import numpy as np
import pytest

import seedtree as st

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import make_blobs, make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402

X, Y = make_classification(n_samples=120, n_features=6, n_informative=4, random_state=0)


def test_random_state_is_numpy_mt19937_of_the_seed_sequence() -> None:
    node = st.SeedTree(42) / 3 / 1
    ours = node.random_state()
    plain = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(42, spawn_key=(3, 1))))
    assert np.array_equal(ours.randint(0, 2**31, 1000), plain.randint(0, 2**31, 1000))
    assert ours.normal() == plain.normal()
    # The same stream as node.numpy("MT19937"), and the whole 624-word key, not an int seed.
    fresh = node.random_state().get_state()[1]
    assert fresh.tolist() == node.bit_generator("MT19937").state["state"]["key"].tolist()
    assert not np.array_equal(fresh, np.random.RandomState(node.seed_int(32)).get_state()[1])
    # str keys work too, and distinct nodes give distinct states.
    assert not np.array_equal(
        (st.SeedTree(42) / "a").random_state().rand(4), (st.SeedTree(42) / "b").random_state().rand(4)
    )


def test_estimators_are_reproducible_from_a_node() -> None:
    node = st.SeedTree(7) / "forest"
    forest = [
        RandomForestClassifier(n_estimators=8, random_state=node.random_state(), n_jobs=n).fit(X, Y) for n in (1, 2)
    ]
    assert np.array_equal(forest[0].predict_proba(X), forest[1].predict_proba(X))
    other = RandomForestClassifier(n_estimators=8, random_state=(st.SeedTree(7) / "other").random_state()).fit(X, Y)
    assert not np.array_equal(other.predict_proba(X), forest[0].predict_proba(X))
    blobs, _ = make_blobs(n_samples=90, centers=3, random_state=1)
    km = [KMeans(3, n_init=3, random_state=(st.SeedTree(7) / "km").random_state()).fit(blobs) for _ in range(2)]
    assert np.array_equal(km[0].cluster_centers_, km[1].cluster_centers_)
    # An int seed from the node works as well (sklearn's ints are 32-bit).
    assert RandomForestClassifier(n_estimators=2, random_state=node.seed_int(32)).fit(X, Y)


@pytest.mark.slow
def test_cross_validation_and_grid_search_do_not_depend_on_n_jobs() -> None:
    root = st.SeedTree(11)

    def run(n_jobs: int) -> tuple[np.ndarray, dict, np.ndarray]:
        cv = KFold(4, shuffle=True, random_state=(root / "cv").random_state())
        forest = RandomForestClassifier(n_estimators=6, random_state=(root / "model").random_state())
        scores = cross_val_score(forest, X, Y, cv=cv, n_jobs=n_jobs)
        grid = GridSearchCV(
            RandomForestClassifier(random_state=(root / "model").random_state()),
            {"n_estimators": [3, 6], "max_depth": [2, None]},
            cv=cv,
            n_jobs=n_jobs,
        ).fit(X, Y)
        return scores, grid.best_params_, grid.cv_results_["mean_test_score"]

    one, two = run(1), run(2)
    assert np.array_equal(one[0], two[0]) and one[1] == two[1] and np.array_equal(one[2], two[2])
    assert len(set(one[0].tolist())) > 1  # the folds differ: the test is not vacuous


@pytest.mark.slow
def test_random_state_none_in_loky_workers_is_not_reproducible(clean_seedtree: None) -> None:
    # What the docs warn about: random_state=None uses numpy's global RandomState of the
    # process that fits, and loky's worker processes never see seed_everything.
    def scores(n_jobs: int) -> np.ndarray:
        st.seed_everything(5)
        forest = RandomForestClassifier(n_estimators=4, max_features=2)  # random_state=None
        return cross_val_score(forest, X, Y, cv=3, n_jobs=n_jobs)

    assert np.array_equal(scores(1), scores(1))  # one process: seed_everything reaches it
    first, second = scores(2), scores(2)
    assert not np.array_equal(first, second)
