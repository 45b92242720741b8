"""The store-day scenario: held-out identities only, and never the same image twice."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np

from visitlens_dev.bench.lfw import faces_dir
from visitlens_dev.bench.storeday import STAFF, VISITORS, augment, evaluation_people, generate


def test_passes_use_evaluation_identities_and_never_repeat_an_image() -> None:
    root = faces_dir()
    with (root / "identity_split.csv").open() as handle:
        half = {r["identity"]: r["half"] for r in csv.DictReader(handle)}
    for multi in (False, True):
        scenario = generate(root, 5, multi)
        people = {p.person for p in scenario.passes}
        assert len(people) == VISITORS + STAFF
        assert {half[p] for p in people} == {"evaluation"}
        images = Counter(photo for p in scenario.passes for photo in p.photos)
        assert max(images.values()) == 1  # (photo, variant): no byte-identical reuse
        enrolment = {photo for photos in scenario.staff_enrolment.values() for photo in photos}
        assert not enrolment & {path for p in scenario.passes for path, _ in p.photos}
        returning = Counter(p.person for p in scenario.passes if not p.staff)
        assert sum(n > 1 for n in returning.values()) == VISITORS // 2


def test_augmentations_are_mild_and_distinct() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(250, 250, 3), dtype=np.uint8)
    assert augment(image, 0) is image
    variants = [augment(image, k) for k in range(1, 9)]
    for k, variant in enumerate(variants, 1):
        assert variant.shape == image.shape, k
        assert not np.array_equal(variant, image), k
    digests = {v.tobytes() for v in variants}
    assert len(digests) == len(variants)


def test_staff_are_enrolled_from_two_accepted_photos_their_passes_never_show() -> None:
    """A photo the enrolment refuses (two faces, blurred) is replaced by the next, as an
    administrator would: every member starts with two views, never one."""
    refused = {p for photos in evaluation_people(faces_dir()).values() for p in photos[::3]}
    scenario = generate(faces_dir(), 7, False, lambda photo: photo not in refused)
    assert len(scenario.staff_enrolment) == STAFF
    for person, photos in scenario.staff_enrolment.items():
        assert len(photos) == 2 and not set(photos) & refused, person
        passes = [p for p in scenario.passes if p.person == person]
        assert len(passes) == 5 and all(p.staff for p in passes)
        assert not {path for p in passes for path, _ in p.photos} & set(photos)


def test_the_review_catches_a_split_only_with_a_pair_of_the_same_visitor() -> None:
    from datetime import UTC, datetime
    from pathlib import Path

    from visitlens_dev.bench.storeday import Pass, Scenario, score

    at = datetime(2026, 12, 1, tzinfo=UTC)

    def passed(person: str, customer: str, decision: str) -> Pass:
        return Pass(person, False, 0, at, [(Path("x.jpg"), 0)], customer, decision, 0.5)

    scenario = Scenario([
        passed("ann", "c1", "new"), passed("ann", "c2", "new"),  # a split
        passed("bob", "c3", "new"), passed("bob", "c4", "new"),  # another
        passed("eve", "c5", "new"),
        Pass("sam", True, 0, at, [(Path("y.jpg"), 0)], None, "staff"),
    ])  # fmt: skip
    figures = score(scenario, 0, 5, 5, [("c2", "c1"), ("c5", "c3")])
    assert figures["gross_split_rate"] == round(2 / 3, 4)
    assert figures["splits_suggested"] == 0.5  # ann's is listed; eve with bob's is no catch
    assert figures["duplicate_pairs_listed"] == 2 and figures["duplicate_pairs_true"] == 1
    assert figures["suggestions_per_new_customer"] == round(2 / 5, 4)
