"""The store-day scenario: held-out identities only, and never the same image twice."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np

from visitlens_dev.bench.lfw import faces_dir
from visitlens_dev.bench.storeday import STAFF, VISITORS, augment, generate


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
