"""What the contrastive kind's in-batch loss asks of a batch's embeddings."""

from __future__ import annotations

import pytest
import torch

from training_job.kinds.contrastive import pair_loss, similarity_targets


def test_documents_sharing_a_label_are_targeted_as_similar_and_others_not() -> None:
    targets = similarity_targets(torch.tensor([0, 1, 0, 2]))
    assert targets.tolist() == [
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]


def test_multi_label_documents_are_as_similar_as_their_labels_overlap() -> None:
    # one or two of three labels a document (a 0/1 row each), as the dataset's label column
    labels = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 0]])
    targets = similarity_targets(labels)
    assert targets[0, 1] == pytest.approx(0.5)  # share 1 of 2 labels
    assert targets[1, 2] == pytest.approx(1 / 3)  # share 1 of 3
    assert targets[0, 2] == 0.0
    assert targets[1, 1] == 1.0
    assert targets[3, 3] == 0.0  # no label: like no other document, not even itself


def test_the_loss_is_zero_for_embeddings_that_match_the_labels_and_grows_when_they_do_not() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    together = torch.tensor([[1.0, 0.0]] * 4)
    assert pair_loss(apart @ apart.T, similarity_targets(labels)).item() == 0.0
    # every dissimilar pair off by 1, every similar pair right: half the weight each
    assert pair_loss(together @ together.T, similarity_targets(labels)).item() == 0.5


def test_similar_and_dissimilar_pairs_weigh_alike_however_many_labels_a_batch_holds() -> None:
    # six labels, one similar pair among fifteen: it still carries half of the loss
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    embedded = torch.eye(6)  # every pair orthogonal: similar pair off by 1, others right
    assert pair_loss(embedded @ embedded.T, similarity_targets(labels)).item() == 0.5


def test_a_batch_of_one_document_has_nothing_to_compare() -> None:
    one = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = pair_loss(one @ one.T, similarity_targets(torch.tensor([3])))
    assert loss.item() == 0.0
    loss.backward()  # and the step still runs
