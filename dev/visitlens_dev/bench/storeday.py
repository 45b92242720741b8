"""A store-day benchmark: several days at two sites of one chain, through the product as a new
user would drive it — the API to set up, staff enrolled by photo upload, our own pipeline and the
edge's event builder to embed each pass, ``/v1/events`` to ingest, the report API to read.

The scenario is generated from the LFW identities of the *evaluation* half of
``../shared/faces/identity_split.csv`` (research data) with a seed: ``VISITORS`` customers of whom half come back one to three times (another day,
or the same day after the visit window), ``STAFF`` staff members enrolled from two photos the
enrolment accepts and none of their passes use, one photo per pass (single-shot) — and a multi-shot variant where every
pass carries two to four photos of the person. No photo is used twice byte for byte: once a
person's photos are used up, a pass takes a mildly augmented one (``augment``). (The open-set
tail the thresholds use is ``results.scale``'s fit on the calibration half alone — 9.35e-5 per
comparison at 0.415, 18.93 decades per unit — since 2026-12-06; before, all of LFW: ADR 0012.) Truth is known, so
every identity decision can be scored:

- unique-visitor error: |customers created - visitors| / visitors;
- repeat recall: repeat passes linked to the person's first customer / repeat passes;
- false-merge rate: customer passes linked to a customer that belongs to someone else;
- staff leakage: staff passes counted as customers; lost as staff: customer passes taken for staff;
- report equality: the report API's totals equal the visit list, with no manual call.

Each run plays ``VISITLENS_BENCH_SEEDS`` (default 10) seeds from ``VISITLENS_BENCH_SEED``
(default 20261130) and reports every figure's mean with its 95 % interval beside the per-seed
values and the gross errors (splits and merged people, which the net unique-visitor error lets
cancel); the figures are re-checked on held-out seeds, so nothing here is tuned to one.
"""

from __future__ import annotations

import csv
import json
import os
import random
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx

from visitlens.config import Settings
from visitlens.vision.types import as_image
from visitlens_dev.runtime.spec import FUNCTIONS_DIR

VISITORS = 220
STAFF = 6
DAYS = 4
OPEN_HOUR, CLOSE_HOUR = 9, 19
PASSWORD = "benchmark-password-123"  # noqa: S105 - a throw-away account


@dataclass(slots=True)
class Pass:
    person: str  # LFW identity
    staff: bool
    site: int
    at: datetime
    photos: list[tuple[Path, int]]
    """(photo, augmentation): 0 the photo as it is, k > 0 its k-th mild variant (``augment``)."""
    customer: str | None = None
    decision: str | None = None
    similarity: float | None = None


@dataclass(slots=True)
class Scenario:
    passes: list[Pass]
    staff_enrolment: dict[str, list[Path]] = field(default_factory=dict)


def evaluation_people(root: Path) -> dict[str, list[Path]]:
    """LFW identities of the *evaluation* half (``identity_split.csv``) with their photos: the
    thresholds were learned on the calibration half, so no visitor here was ever seen by them."""
    with (root / "identity_split.csv").open() as handle:
        evaluation = {r["identity"] for r in csv.DictReader(handle) if r["half"] == "evaluation"}
    lfw = root / "lfw"
    return {name: sorted((lfw / name).glob("*.jpg")) for name in sorted(evaluation)}


def generate(
    root: Path, seed: int, multi: bool, enrollable: Callable[[Path], bool] = lambda _: True
) -> Scenario:
    """A reproducible scenario of ``VISITORS`` customers and ``STAFF`` staff members, all from
    the evaluation half. Returning customers are people with two or more photos; a pass never
    reuses a photo byte for byte: once a person's photos are used up, the next pass takes one of
    them mildly augmented (mirror, light, crop, tilt — ``augment``).

    Staff are enrolled as an administrator does it: from the first two of their photos the
    enrolment accepts (``enrollable``: one usable face; LFW photos often show a second face or
    are blurred, and a refused photo is replaced by another, not left out), so every member
    starts with two views; their passes use the photos not offered for enrolment."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible scenario, not a secret
    people = evaluation_people(root)
    staff: list[str] = []
    enrolment: dict[str, list[Path]] = {}
    for person in rng.sample(sorted(p for p, ph in people.items() if len(ph) >= 4), k=STAFF * 4):
        photos = list(people[person])
        rng.shuffle(photos)
        offered = [n for n, photo in enumerate(photos) if enrollable(photo)][:2]
        if len(offered) < 2 or len(photos) - (offered[-1] + 1) < 2:
            continue  # not two enrollable photos with two more left for passes
        enrolment[person] = [photos[n] for n in offered]
        people[person] = photos[offered[-1] + 1 :]
        staff.append(person)
        if len(staff) == STAFF:
            break
    several = sorted(p for p, photos in people.items() if len(photos) >= 2 and p not in staff)
    returning = rng.sample(several, VISITORS // 2)
    once = rng.sample(sorted(set(people) - set(staff) - set(returning)), VISITORS - len(returning))
    start = (datetime.now(UTC) - timedelta(days=DAYS + 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    passes: list[Pass] = []
    scenario = Scenario(passes)
    used: dict[Path, int] = {}

    def when(day: int) -> datetime:
        minutes = rng.randrange((CLOSE_HOUR - OPEN_HOUR) * 60)
        return start + timedelta(
            days=day, hours=OPEN_HOUR, minutes=minutes, seconds=rng.random() * 60
        )

    def photos_for(pool: list[Path]) -> list[tuple[Path, int]]:
        """The person's next photos: each time a different one, or a new augmentation of one."""
        count = rng.randint(2, 4) if multi else 1
        taken = []
        for _ in range(count):
            photo = min(pool, key=lambda path: (used.get(path, 0), rng.random()))
            taken.append((photo, used.get(photo, 0)))
            used[photo] = used.get(photo, 0) + 1
        return taken

    for person in [*returning, *once]:
        visits = 1 + (rng.randint(1, 3) if person in returning else 0)
        days = sorted(rng.randrange(DAYS) for _ in range(visits))
        last: datetime | None = None
        site = rng.randrange(2)
        for day in days:
            at = when(day)
            if last is not None and at - last < timedelta(hours=1):
                at = last + timedelta(hours=1, minutes=rng.randrange(60))  # a new visit
            last = at
            passes.append(Pass(person, False, site if rng.random() < 0.8 else 1 - site, at,
                               photos_for(people[person])))  # fmt: skip
    for person in staff:
        scenario.staff_enrolment[person] = enrolment[person]
        for _ in range(5):
            passes.append(Pass(person, True, rng.randrange(2), when(rng.randrange(DAYS)),
                               photos_for(people[person])))  # fmt: skip
    passes.sort(key=lambda p: p.at)
    return scenario


def augment(image: Any, k: int) -> Any:
    """The ``k``-th mild variant of a photo (0: the photo itself): mirror, then light, crop and
    tilt in turn, combined as ``k`` grows — what a second camera frame might differ by."""
    if k == 0:
        return image
    out = image
    if k % 2 == 1:
        out = cv2.flip(out, 1)
    step = (k + 1) // 2
    h, w = out.shape[:2]
    if step % 3 == 1:
        out = cv2.convertScaleAbs(out, alpha=1.0 + 0.08 * step, beta=-4 * step)
    elif step % 3 == 2:
        margin = max(1, round(min(h, w) * 0.04 * (1 + step // 3)))
        out = cv2.resize(out[margin : h - margin, margin : w - margin], (w, h))
    else:
        angle = 4.0 * (1 if step % 2 else -1) * (1 + step // 6)
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out = cv2.warpAffine(out, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    return out


class Embedder:
    """Our own pipeline: the face nearest the centre of each photo (LFW's person)."""

    def __init__(self, settings: Settings) -> None:
        from visitlens.adapters.onnx_models import load_models
        from visitlens.vision.pipeline import FacePipeline

        self.pipeline = FacePipeline(*load_models(settings))
        self._faces: dict[tuple[Path, int], Any] = {}  # seeds share photos: each embedded once
        self._enrollable: dict[Path, bool] = {}

    def shot(self, photo: tuple[Path, int]) -> Any:
        if photo not in self._faces:
            self._faces[photo] = self._nearest_face(photo)
        return self._faces[photo]

    def enrollable(self, photo: Path) -> bool:
        """Whether staff enrolment accepts the photo (exactly one usable face): the same rule
        the enrol-staff function applies (``one_face``)."""
        from visitlens.errors import InvalidInput
        from visitlens.staff.enrollment import one_face

        if photo not in self._enrollable:
            try:
                one_face(self.pipeline, as_image(cv2.imread(str(photo))))
                self._enrollable[photo] = True
            except InvalidInput:
                self._enrollable[photo] = False
        return self._enrollable[photo]

    def _nearest_face(self, photo: tuple[Path, int]) -> Any:
        from visitlens.vision.pipeline import Face

        path, variant = photo
        image = as_image(augment(cv2.imread(str(path)), variant))
        faces = [
            f for f in self.pipeline.analyze(image, embed_unusable=True) if f.embedding is not None
        ]
        if not faces:
            return None
        h, w = image.shape[:2]

        def distance(face: Face) -> float:
            x, y, fw, fh = face.detection.box
            return float((x + fw / 2 - w / 2) ** 2 + (y + fh / 2 - h / 2) ** 2)

        return min(faces, key=distance)


async def run_scenario(
    settings: Settings, scenario: Scenario, embedder: Embedder, apps: dict[str, Any]
) -> dict[str, Any]:
    from visitlens.wiring import create_system_admin
    from visitlens_edge import events
    from visitlens_edge.tracking import Finished, Shot, Track

    def client(name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=apps[name]), base_url=f"http://{name}", timeout=120
        )

    email = f"storeday-{uuid.uuid4().hex[:8]}@example.com"
    await create_system_admin(settings, email, PASSWORD)
    async with client("api") as api, client("ingest") as ingest, client("enroll-staff") as staff_fn, client("aggregate") as aggregate, client("merge") as merge:  # fmt: skip
        login = {"grant_type": "password", "email": email, "password": PASSWORD}
        token = (await api.post("/v1/auth/token", json=login)).json()["access_token"]
        h = {"authorization": f"Bearer {token}"}
        slug = f"storeday-{uuid.uuid4().hex[:8]}"
        tenant = (
            await api.post("/v1/tenants", headers=h, json={"slug": slug, "name": slug})
        ).json()["id"]
        t = f"/v1/tenants/{tenant}"
        sites, cameras = [], []
        for name, zone in (("Mitte", "Europe/Berlin"), ("Airport", "Europe/Berlin")):
            site = (
                await api.post(f"{t}/sites", headers=h, json={"name": name, "timezone": zone})
            ).json()["id"]
            camera = (
                await api.post(f"{t}/sites/{site}/cameras", headers=h, json={"name": "entrance"})
            ).json()["id"]
            sites.append(site)
            cameras.append(camera)
        workers = []  # one edge worker (API key) per store
        for site, camera in zip(sites, cameras, strict=True):
            key = expect(await api.post(f"{t}/api-keys", headers=h, json={
                "name": "edge", "role": "worker", "site_ids": [site], "camera_ids": [camera]}), 201)  # fmt: skip
            grant = expect(await api.post("/v1/auth/token", json={"grant_type": "api_key", "api_key": key["api_key"]}), 200)  # fmt: skip
            workers.append(grant["access_token"])
        staff_ids: dict[str, str] = {}
        for person, photos in scenario.staff_enrolment.items():
            created = (
                await staff_fn.post(f"/v1/staff/{tenant}", headers=h, json={"display_name": person})
            ).json()
            staff_ids[person] = created["id"]
            for photo in photos:  # chosen to be accepted (``Embedder.enrollable``): a refusal fails
                expect(await staff_fn.post(f"/v1/staff/{tenant}/{created['id']}/images", headers=h,
                       files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}), 201)  # fmt: skip
        no_face = 0
        for n, p in enumerate(scenario.passes):
            faces = [f for f in (embedder.shot(photo) for photo in p.photos) if f is not None]
            if not faces:
                no_face += 1
                continue
            ts = p.at.timestamp()
            track = Track(
                f"entrance:storeday:{n:06d}", ts, ts + 3.0 + len(faces), faces[0].detection.box
            )
            track.frames_seen = 5 * len(faces)
            track.shots = [
                Shot(ts + 1.0 + i, face.embedding, face.quality.score, face.detection)
                for i, face in enumerate(faces)
            ]
            attributes, data = events.face_detected(
                Finished(track, "ended"), uuid.UUID(tenant), uuid.UUID(sites[p.site]),
                uuid.UUID(cameras[p.site]), embedder.pipeline.embedder.model_id,
                embedder.pipeline.embedder.dim,
            )  # fmt: skip
            body = json.dumps({"specversion": "1.0", **attributes, "data": data})
            response = await ingest.post("/v1/events", content=body, headers={
                "authorization": f"Bearer {workers[p.site]}", "content-type": "application/cloudevents+json"})  # fmt: skip
            if response.status_code == 200:
                reply = response.json()  # the reply event's data (binary mode)
                if response.headers.get("ce-type") == "com.visitlens.staff.recognized.v1":
                    p.decision = "staff"
                else:
                    p.customer = reply["customer_id"]
                    p.decision = "new" if reply["is_new_customer"] else "returning"
                    p.similarity = reply.get("similarity")
            else:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:200]}")
        # the report, as the aggregate function's own triggers leave it (the minutely drain)
        await aggregate_pending(aggregate, settings)
        first = min(p.at for p in scenario.passes).date().isoformat()
        last = max(p.at for p in scenario.passes).date().isoformat()
        report = (
            await api.get(f"{t}/reports/visits", headers=h, params={"start": first, "end": last})
        ).json()
        listed, cursor = 0, None
        while True:
            params: dict[str, Any] = {"start": first, "end": last, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = (await api.get(f"{t}/visits", headers=h, params=params)).json()
            listed += len(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        pairs: list[tuple[str, str]] = []  # the duplicates review a person would be shown
        cursor = None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = expect(await merge.get(f"/v1/persons/{tenant}/duplicates", headers=h,
                                          params=params), 200)  # fmt: skip
            pairs += [(d["customer"]["id"], d["candidate"]["id"]) for d in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return score(scenario, no_face, report["totals"]["visits"], listed, pairs)


def expect(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.url.path}: {response.status_code} {response.text[:300]}"
        )
    return response.json()


async def aggregate_pending(aggregate: httpx.AsyncClient, settings: Settings) -> None:
    from visitlens.adapters.event_tokens import function_audience
    from visitlens_dev.runtime.runner import local_issuer

    token = local_issuer(settings).token(function_audience("aggregate"), "bench:pingsource")
    tick = {"specversion": "1.0", "type": "dev.knative.sources.ping", "id": uuid.uuid4().hex,
            "source": "/apis/v1/namespaces/visitlens/pingsources/aggregate-tick",
            "datacontenttype": "application/json", "data": {"hours": 0}}  # fmt: skip
    response = await aggregate.post("/", content=json.dumps(tick), headers={
        "authorization": f"Bearer {token}", "content-type": "application/cloudevents+json"})  # fmt: skip
    if response.status_code != 200:
        raise RuntimeError(f"aggregate answered {response.status_code}: {response.text[:200]}")


def score(
    scenario: Scenario,
    no_face: int,
    reported: int,
    listed: int,
    pairs: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    customer_passes = [p for p in scenario.passes if not p.staff and p.decision is not None]
    staff_passes = [p for p in scenario.passes if p.staff and p.decision is not None]
    visitors = {p.person for p in scenario.passes if not p.staff}
    owner: dict[str, dict[str, int]] = {}
    for p in customer_passes + staff_passes:
        if p.customer:
            owner.setdefault(p.customer, {}).setdefault(p.person, 0)
            owner[p.customer][p.person] += 1
    majority = {c: max(people, key=lambda k: people[k]) for c, people in owner.items()}
    first_customer: dict[str, str | None] = {}
    repeats = recognised = 0
    for p in customer_passes:
        if p.person not in first_customer:
            first_customer[p.person] = p.customer
            continue
        repeats += 1
        recognised += p.customer is not None and p.customer == first_customer[p.person]
    linked = [p for p in customer_passes if p.customer]
    false_merges = sum(majority[p.customer] != p.person for p in linked if p.customer)
    wrong = sorted(
        round(p.similarity, 3)
        for p in linked
        if p.customer and majority[p.customer] != p.person and p.similarity is not None
    )
    right = [
        p.similarity
        for p in linked
        if p.customer and majority[p.customer] == p.person and p.similarity is not None
    ]
    customers = len({p.customer for p in customer_passes + staff_passes if p.customer})
    # Gross errors (the net unique-visitor error lets a split and a merge cancel): each visitor
    # counted as more than one customer adds a split per extra customer; each visitor with a pass
    # given to someone else's customer is a person falsely merged.
    theirs: dict[str, set[str]] = {}
    for p in customer_passes:
        if p.customer:
            theirs.setdefault(p.person, set()).add(p.customer)
    splits = sum(len(c) - 1 for c in theirs.values())
    merged_people = len(
        {p.person for p in linked if p.customer and majority[p.customer] != p.person}
    )
    # The duplicates review: a split is caught when its extra customer is listed with another
    # customer of the same visitor; every listed pair is a look a person has to take.
    listed_pairs = {frozenset(pair) for pair in pairs or []}
    caught = 0
    for mine in theirs.values():  # a visitor's extra customers, each caught by at most one pair
        within = sum(1 for a in mine for b in mine if a < b and frozenset((a, b)) in listed_pairs)
        caught += min(within, len(mine) - 1)
    true_pairs = sum(
        majority.get(a) is not None and majority.get(a) == majority.get(b) for a, b in pairs or []
    )
    return {
        "visitors": len(visitors),
        "customer_passes": len(customer_passes),
        "staff_passes": len(staff_passes),
        "passes_without_a_face": no_face,
        "customers_created": customers,
        "unique_visitor_error": round(abs(customers - len(visitors)) / len(visitors), 4),
        "unique_visitor_error_signed": round((customers - len(visitors)) / len(visitors), 4),
        "gross_split_rate": round(splits / len(visitors), 4),
        "gross_false_merge_rate_per_person": round(merged_people / len(visitors), 4),
        "repeat_passes": repeats,
        "repeat_recall": round(recognised / repeats, 4) if repeats else None,
        "false_merge_rate": round(false_merges / len(linked), 4) if linked else 0.0,
        "staff_leakage": round(
            sum(p.decision != "staff" for p in staff_passes) / len(staff_passes), 4
        ),
        "lost_as_staff": round(
            sum(p.decision == "staff" for p in customer_passes) / len(customer_passes), 4
        ),
        "false_link_similarities": wrong,
        "true_link_similarity_p5": round(float(sorted(right)[len(right) // 20]), 3)
        if right
        else None,
        "duplicate_pairs_listed": len(pairs or []),
        "duplicate_pairs_true": true_pairs,
        "splits_suggested": round(caught / splits, 4) if splits else None,
        "suggestions_per_new_customer": round(len(pairs or []) / customers, 4)
        if customers
        else 0.0,
        "report_visits": reported,
        "listed_visits": listed,
        "report_equals_visits": reported == listed,
    }


async def run(settings: Settings) -> dict[str, Any]:
    from functions_framework.aio import create_asgi_app

    from visitlens.adapters.endpoints import resolve
    from visitlens_dev.bench.lfw import faces_dir
    from visitlens_dev.runtime.runner import local_issuer

    first_seed = int(os.environ.get("VISITLENS_BENCH_SEED", "20261130"))
    seeds = [first_seed + n for n in range(int(os.environ.get("VISITLENS_BENCH_SEEDS", "10")))]
    os.environ.update(resolve(settings).environment())
    os.environ.update(local_issuer(settings).environment())
    os.environ["VISITLENS_DATA_DIR"] = str(settings.data_dir)
    os.environ["VISITLENS_ENV"] = settings.env.value
    os.environ["VISITLENS_MODELS__DIR"] = str(settings.models_dir)
    os.environ["VISITLENS_HTTP__RATE_LIMIT_API_KEY"] = "100000/minute"
    os.environ["VISITLENS_HTTP__RATE_LIMIT_TENANT"] = "100000/minute"
    apps = {
        name: create_asgi_app(  # type: ignore[no-untyped-call]
            target=name.replace("-", "_"), source=str(Path(FUNCTIONS_DIR) / name / "main.py")
        )
        for name in ("api", "ingest", "enroll-staff", "aggregate", "merge")
    }
    embedder = Embedder(settings)
    runs = []
    for seed in seeds:
        single = await run_scenario(
            settings, generate(faces_dir(), seed, False, embedder.enrollable), embedder, apps
        )
        multi = await run_scenario(
            settings, generate(faces_dir(), seed, True, embedder.enrollable), embedder, apps
        )
        runs.append({"seed": seed, "single_shot": single, "multi_shot": multi})
    return summarise(runs)


SUMMARISED = {
    "unique_visitor_error": ("single_shot", "unique_visitor_error"),
    "unique_visitor_error_multi": ("multi_shot", "unique_visitor_error"),
    "gross_split_rate": ("single_shot", "gross_split_rate"),
    "gross_split_rate_multi": ("multi_shot", "gross_split_rate"),
    "gross_false_merge_rate_per_person": ("single_shot", "gross_false_merge_rate_per_person"),
    "gross_false_merge_rate_per_person_multi": ("multi_shot", "gross_false_merge_rate_per_person"),
    "repeat_recall_single": ("single_shot", "repeat_recall"),
    "repeat_recall_multi": ("multi_shot", "repeat_recall"),
    "false_merge_rate_per_pass": ("single_shot", "false_merge_rate"),
    "false_merge_rate_per_pass_multi": ("multi_shot", "false_merge_rate"),
    "lost_as_staff": ("single_shot", "lost_as_staff"),
    "lost_as_staff_multi": ("multi_shot", "lost_as_staff"),
    "staff_leakage": ("single_shot", "staff_leakage"),
    "staff_leakage_multi": ("multi_shot", "staff_leakage"),
    "splits_suggested": ("single_shot", "splits_suggested"),
    "suggestions_per_new_customer": ("single_shot", "suggestions_per_new_customer"),
}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure over the seeds: ``<figure>_mean`` and its 95 % interval (Student's t), and the
    per-seed values; every seed's full figures stay beside them."""
    from scipy import stats

    out: dict[str, Any] = {
        "seeds": [r["seed"] for r in runs],
        "days": DAYS,
        "sites": 2,
        "visitors_per_seed": VISITORS,
        "staff_per_seed": STAFF,
        "identities": "LFW evaluation half (identity_split.csv); no photo reused byte for byte",
    }
    for name, (variant, key) in SUMMARISED.items():
        values = [float(r[variant][key]) for r in runs if r[variant][key] is not None]
        if not values:  # e.g. no split in any seed: nothing for the review to catch
            out[f"{name}_mean"], out[f"{name}_ci95"], out[f"{name}_per_seed"] = None, None, []
            continue
        mean = statistics.fmean(values)
        if len(values) > 1:
            half = (
                stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
            )
        else:
            half = float("nan")
        out[f"{name}_mean"] = round(mean, 4)
        out[f"{name}_ci95"] = [round(mean - half, 4), round(mean + half, 4)]
        out[f"{name}_per_seed"] = [round(v, 4) for v in values]
    out["report_equals_visits"] = all(
        r[v]["report_equals_visits"] for r in runs for v in ("single_shot", "multi_shot")
    )
    out["runs"] = runs
    return out
