"""Identity embeddings on real photos: same person close, different people apart."""

from __future__ import annotations

import numpy as np
import pytest

from portraitfx.face.identity import (
    SAME_PERSON_DISTANCE,
    FaceEmbedder,
    identity_distance,
    identity_similarity,
)


@pytest.fixture(scope="module")
def embeddings(analyzer, obama, obama2, obama3, biden, astronaut):
    out = {}
    with FaceEmbedder() as embed:
        for name, img in {
            "obama": obama,
            "obama2": obama2,
            "obama3": obama3,
            "biden": biden,
            "astronaut": astronaut,
        }.items():
            face = analyzer.analyze(img)[0]
            out[name] = embed(img, face)
    return out


def test_shape_and_norm(embeddings):
    e = embeddings["obama"]
    assert e.shape == (128,) and e.dtype == np.float32
    assert 0.5 < np.linalg.norm(e) < 1.5


def test_same_person_closer_than_different(embeddings):
    same = [identity_distance(embeddings["obama"], embeddings[k]) for k in ("obama2", "obama3")]
    other = [identity_distance(embeddings["obama"], embeddings[k]) for k in ("biden", "astronaut")]
    assert max(same) < SAME_PERSON_DISTANCE, same
    assert min(other) > SAME_PERSON_DISTANCE, other
    assert identity_distance(embeddings["biden"], embeddings["astronaut"]) > SAME_PERSON_DISTANCE


def test_similarity_is_monotonic_and_calibrated(embeddings):
    a, b, c = embeddings["obama"], embeddings["obama2"], embeddings["biden"]
    assert identity_similarity(a, a) > 0.99
    assert identity_similarity(a, b) > 0.5 > identity_similarity(a, c)


def test_analyzer_embed_option(analyzer, obama):
    from portraitfx.face.analyze import FaceAnalyzer

    with FaceAnalyzer(embed=True) as a:
        face = a.analyze(obama)[0]
    assert face.embedding is not None and face.embedding.shape == (128,)


def test_unknown_model_name_suggests():
    from portraitfx.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="did you mean"):
        FaceEmbedder("dlib/face_recognition_resnet_v2")
