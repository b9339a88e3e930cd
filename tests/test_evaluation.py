"""report/evaluation.py: the confusion matrix and per-class figures against hand counts."""

import numpy as np

from lenet_jax.report.evaluation import per_class_accuracy
from lenet_jax.training.metrics import confusion_matrix


def test_confusion_rows_are_true_classes_and_columns_predictions():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 2, 2])
    expected = np.array(
        [
            [1, 2, 0],  # class 0: once right, twice taken for 1
            [0, 1, 1],
            [0, 0, 1],
        ]
    )
    np.testing.assert_array_equal(confusion_matrix(labels, predictions, 3), expected)


def test_a_class_never_seen_or_never_predicted_keeps_its_zero_row_and_column():
    confusion = confusion_matrix(np.array([0, 0]), np.array([0, 2]), 4)
    assert confusion.shape == (4, 4) and confusion.sum() == 2
    assert confusion[0, 0] == 1 and confusion[0, 2] == 1


def test_per_class_accuracy_is_recall_and_zero_for_an_absent_class():
    confusion = np.array([[1, 2, 0], [0, 1, 1], [0, 0, 0]])  # class 2 never in the labels
    np.testing.assert_allclose(per_class_accuracy(confusion), [1 / 3, 1 / 2, 0.0])
