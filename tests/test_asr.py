import random

from selflearn.sim.asr import AsrConfig, AsrModel, align, confidence_auc, load_pairs


def test_same_seed_same_recognition() -> None:
    model = AsrModel()
    a = [model.transcribe("turn on the kitchen light", random.Random(7)) for _ in range(3)]
    assert len({(r.text, r.confidence) for r in a}) == 1


def test_rate_zero_is_perfect_and_confident() -> None:
    model = AsrModel(AsrConfig(rate=0.0))
    r = model.transcribe("what is the weather in wilkerson", random.Random(1), names={"wilkerson"})
    assert r.text == "what is the weather in wilkerson" and r.errors == 0


def test_name_confusions_are_systematic_real_words() -> None:
    model = AsrModel(AsrConfig(rate=4.0), vocabulary=["wilkinson", "wilkins"])
    rng = random.Random(3)
    heard = [model.transcribe("wilkerson", rng, names={"wilkerson"}).text for _ in range(300)]
    wrong = [h for h in heard if len(h.split()) == 1 and h != "wilkerson"]  # substitutions, no insertions
    assert len(wrong) > 50
    _, count = max(((w, wrong.count(w)) for w in set(wrong)), key=lambda x: x[1])
    assert count / len(wrong) > 0.5
    assert all(w in model.vocabulary or w == "wilkerson" for h in wrong for w in h.split())


def test_model_wer_and_mix_close_to_real_pairs() -> None:
    pairs = load_pairs("test")[:800]
    refs, names = [p.ref for p in pairs], [p.names for p in pairs]
    real = align(refs, [p.hyp for p in pairs], names)
    model = AsrModel()
    rng = random.Random(0)
    results = [model.transcribe(p.ref, rng, names=p.names) for p in pairs]
    sim = align(refs, [r.text for r in results], names)
    assert abs(sim.wer - real.wer) < 0.07
    assert sim.substitutions > sim.deletions > 0 and sim.insertions > 0
    assert abs(sim.utterances_with_error / sim.utterances - real.utterances_with_error / real.utterances) < 0.1
    assert confidence_auc([r.confidence for r in results], [r.errors > 0 for r in results]) > 0.7


def test_rate_scales_errors() -> None:
    pairs = load_pairs("test")[:400]
    wer = []
    for rate in (0.3, 1.0):
        model, rng = AsrModel(AsrConfig(rate=rate)), random.Random(0)
        hyps = [model.transcribe(p.ref, rng, names=p.names).text for p in pairs]
        wer.append(align([p.ref for p in pairs], hyps, [p.names for p in pairs]).wer)
    assert wer[0] < 0.6 * wer[1]
