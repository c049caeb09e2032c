"""``vaekit serve``: the explorer's answers (decode = the model's decode, batching = one call per group, activity
order, conditions, layers, audio) and the web app's safety (no path traversal, upload limits and types)."""

from __future__ import annotations

import base64
import http.client
import io
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import needs_shared
from vaekit.cli import app
from vaekit.errors import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--data", "digits", "--set", "model.likelihood=dlogistic", "--set", "train.max_epochs=2",
         "--set", "train.progress=false", "--no-evaluate", "--no-figures"]


def _train(out, model, *args):
    r = CliRunner().invoke(app, ["train", model, *QUICK, *args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return {"vae": _train(root / "vae", "vae", "--set", "model.hidden=[32]", "--set", "model.latent_dim=4"),
            "cvae": _train(root / "cvae", "cvae", "--set", "model.hidden=[32]", "--set", "model.latent_dim=3"),
            "ladder": _train(root / "ladder", "ladder_vae", "--set", "model.latent_dims=[4,2]",
                             "--set", "model.hidden=[[32],[16]]")}


def _pixels(uri: str) -> np.ndarray:
    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))), np.float32) / 255


def test_decode_is_the_models_decode(runs):
    from vaekit.explorer import Explorer

    ex = Explorer(runs["vae"], examples=50)
    z = torch.randn(3, 4)
    items = ex.decode(z)
    with torch.no_grad():
        mean = ex.model.decode(z).mean[:, 0].numpy()
    for item, m in zip(items, mean):
        assert np.abs(_pixels(item["image"]) - m).max() <= 0.5 / 255 + 1e-6  # the PNG's 8-bit rounding


def test_dimensions_ordered_by_activity(runs):
    from vaekit.explorer import ACTIVE_THRESHOLD, Explorer

    ex = Explorer(runs["vae"], examples=60)
    x = ex.view.batch(list(range(60)))["x"]
    with torch.no_grad():
        var = ex.model.encode(x).mean.var(0)
    [layer] = ex.layers
    assert np.allclose(layer["variance"], var.numpy(), rtol=1e-5)
    assert layer["order"] == torch.argsort(var, descending=True).tolist()
    assert layer["active"] == (var > ACTIVE_THRESHOLD).tolist()


def test_batched_decodes_equal_single_ones(runs):
    from vaekit.explorer import Explorer, Request

    ex = Explorer(runs["cvae"], examples=20)
    calls = []
    decode = ex.view.decode
    ex.view.decode = lambda z, c: calls.append(z.shape[0]) or decode(z, c)
    reqs = [Request(z=torch.randn(3).tolist(), cond=(("y", i % 2),)) for i in range(6)]
    together = ex.decode_many(reqs)
    assert sorted(calls) == [3, 3]  # one decoder call per condition
    for r, item in zip(reqs, together):
        assert item == ex.decode(torch.tensor([r.z]), cond=dict(r.cond))[0]
    # the condition is a control: the same z under two classes decodes differently
    a, b = ex.decode(torch.zeros(1, 3), cond={"y": 0})[0], ex.decode(torch.zeros(1, 3), cond={"y": 7})[0]
    assert a != b
    with pytest.raises(UsageError, match="out of range"):
        ex.decode(torch.zeros(1, 3), cond={"y": 10})
    with pytest.raises(UsageError, match="no condition"):
        ex.decode(torch.zeros(1, 3), cond={"speaker": 0})


def test_interpolation_ends_at_the_examples(runs):
    from vaekit.explorer import Explorer

    ex = Explorer(runs["vae"], examples=20)
    frames = ex.interpolate("test:2", "test:5", steps=6)
    assert len(frames) == 6
    za, zb = (torch.tensor(ex.describe_example(k)["codes"][0]) for k in ("test:2", "test:5"))
    assert frames[0] == ex.decode(za[None])[0] and frames[-1] == ex.decode(zb[None])[0]
    with pytest.raises(UsageError, match="2 to 64 steps"):
        ex.interpolate("test:0", "test:1", steps=1)
    assert len(ex.sample(5, temperature=0.7)) == 5
    with pytest.raises(UsageError, match="temperature"):
        ex.sample(2, temperature=0)


def test_hierarchical_layers(runs):
    from vaekit.explorer import Explorer

    ex = Explorer(runs["ladder"], examples=20)
    assert [L["dim"] for L in ex.layers] == [4, 2]
    codes = ex.describe_example("test:3")["codes"]
    x = ex.example("test:3")["x"]
    z = torch.tensor([codes[1]]) + 1.5
    item = ex.decode(z, layer=1, base="test:3")[0]
    with torch.no_grad():
        want = ex.model.decode_with_layer(x, 1, z).mean[0, 0].numpy()
    assert np.abs(_pixels(item["image"]) - want).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(UsageError, match="layer 1 has 2 dimensions"):
        ex.decode(torch.zeros(1, 4), layer=1)


def test_a_vq_model_is_refused_with_a_reason(tmp_path):
    from vaekit.explorer import Explorer

    run = _train(tmp_path / "vq", "vqvae", "--set", "model.num_down=1", "--set", "model.hidden=16",
                 "--set", "model.num_codes=16", "--set", "train.max_epochs=1")
    with pytest.raises(UsageError, match="no continuous latent to explore"):
        Explorer(run)


# -- the web app, served for real ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(runs):
    from vaekit.explorer import Explorer
    from vaekit.serve import build_app, serving

    ex = Explorer(runs["vae"], examples=20, max_upload=20_000)
    (runs["vae"] / "figures").mkdir(exist_ok=True)
    (runs["vae"].parent / "secret.txt").write_text("not the run's")
    (runs["vae"] / "figures" / "link.txt").symlink_to(runs["vae"].parent / "secret.txt")
    application = build_app(ex)
    with serving(application) as port:
        yield {"port": port, "app": application, "explorer": ex}


def _raw(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """A request with the path sent as written (no client normalising ``..`` away)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
        conn.putheader(k, v)
    conn.endheaders()
    if body:
        conn.send(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def test_only_the_runs_files_are_served(server):
    port = server["port"]
    assert _raw(port, "GET", "/files/config.yaml")[0] == 200
    for path in ("/files/../secret.txt", "/files/../../../../etc/passwd", "/files/%2e%2e/secret.txt",
                 "/files/figures/../../secret.txt", "/files//etc/passwd", "/files/figures/link.txt",
                 "/files/nothing.txt", "/../secret.txt", "/etc/passwd"):
        status, data = _raw(port, "GET", path)
        assert status == 404, (path, status, data[:80])
        assert b"not the run's" not in data and b"root:" not in data


def _multipart(name: str, content: bytes, mime: str) -> tuple[bytes, dict]:
    boundary = "vaekitboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: {mime}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_uploads(server):
    from PIL import Image

    port = server["port"]
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((20, 20)) * 255).astype(np.uint8)).save(buf, format="PNG")
    status, data = _raw(port, "POST", "/api/upload", *_multipart("digit.png", buf.getvalue(), "image/png"))
    assert status == 200, data
    res = json.loads(data)
    assert res["key"].startswith("upload:") and len(res["codes"][0]) == 4
    status, data = _raw(port, "POST", "/api/interpolate",
                        json.dumps({"a": "test:0", "b": res["key"], "steps": 4}).encode())
    assert status == 200 and len(json.loads(data)["items"]) == 4
    status, data = _raw(port, "POST", "/api/upload", *_multipart("big.png", b"\x89PNG" + b"0" * 200_000, "image/png"))
    assert status == 413 and "over the limit of 20000 bytes" in json.loads(data)["error"]
    status, data = _raw(port, "POST", "/api/upload", *_multipart("tool.exe", b"MZ\x90\x00", "application/octet-stream"))
    assert status == 415 and "is not an image upload" in json.loads(data)["error"]
    status, data = _raw(port, "POST", "/api/upload", *_multipart("fake.png", b"not a png at all", "image/png"))
    assert status == 415 and "cannot be read as an image" in json.loads(data)["error"]


def test_bad_requests_get_json_errors(server):
    port = server["port"]
    for body, message in ((b"{not json", "not JSON"), (json.dumps({"z": [0.0]}).encode(), "has 4 dimensions"),
                          (json.dumps({"z": ["a"] * 4}).encode(), "list of numbers")):
        status, data = _raw(port, "POST", "/api/decode", body, {"Content-Type": "application/json"})
        assert status == 400 and message in json.loads(data)["error"], data


def test_requests_that_arrive_together_share_a_decode(server):
    from concurrent.futures import ThreadPoolExecutor

    port, batcher = server["port"], server["app"].state.batcher
    before = len(batcher.batches)
    zs = [torch.randn(4).tolist() for _ in range(24)]
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda z: _raw(port, "POST", "/api/decode", json.dumps({"z": z}).encode()), zs))
    sizes = batcher.batches[before:]
    assert sum(sizes) == 24 and max(sizes) > 1, sizes  # some were answered by one decoder call together
    ex = server["explorer"]
    for z, (status, data) in zip(zs, answers):
        assert status == 200 and json.loads(data) == ex.decode(torch.tensor([z]))[0]


def test_serve_binds_localhost_by_default(monkeypatch, runs):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    r = CliRunner().invoke(app, ["serve", str(runs["vae"]), "--port", "8765"])
    assert r.exit_code == 0, r.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8765
    r = CliRunner().invoke(app, ["serve", str(runs["vae"]), "--port", "0"])
    assert r.exit_code == 2 and "--port must be in 1..65535" in r.output


@pytest.mark.slow
@needs_shared
def test_audio_explorer_decodes_sound(tmp_path):
    import soundfile as sf

    from vaekit.explorer import Explorer

    run = tmp_path / "speech"
    r = CliRunner().invoke(app, [
        "train", "configs/fsdd_speech_vae.yaml", "--set", "data.subset=32", "--set", "train.max_steps=2",
        "--set", "model.latent_dim=3", "--set", "model.ref_channels=[4,4]", "--set", "model.ref_gru=8",
        "--set", "model.prenet=[8]", "--set", "model.decoder_gru=12", "--set", "train.max_time=null",
        "--no-evaluate", "--no-figures", "--out", str(run)])
    assert r.exit_code == 0, r.output
    ex = Explorer(run, examples=8)
    assert ex.view.output == "audio" and [c["name"] for c in ex.conditions] == ["y"]
    [item] = ex.decode(torch.zeros(1, 3), cond={"y": 4})
    wave, rate = sf.read(io.BytesIO(base64.b64decode(item["audio"].split(",", 1)[1])))
    assert rate == 8000 and wave.ndim == 1 and len(wave) > 0 and item["image"].startswith("data:image/png")
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(np.linspace(0, 2000, 8000)), 16000, format="WAV")
    res = ex.upload(buf.getvalue(), "tone.wav")
    assert len(res["codes"][0]) == 3 and res["original"]["audio"].startswith("data:audio/wav")
    with pytest.raises(UsageError, match="cannot be read as sound"):
        ex.upload(b"RIFF0000WAVEjunk", "broken.wav")


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("name, output", [("text_vae", "text"), ("musicvae", "audio")])
def test_text_and_music_explorers(tmp_path, name, output):
    from test_cli import SMOKE_OTHER

    from vaekit.explorer import Explorer

    r = CliRunner().invoke(app, ["train", name, *SMOKE_OTHER[name], "--set", "train.max_epochs=1",
                                 "--no-evaluate", "--no-figures", "--out", str(tmp_path / name)])
    assert r.exit_code == 0, r.output
    ex = Explorer(tmp_path / name, examples=6)
    assert ex.view.output == output
    codes = ex.describe_example("test:1")["codes"][0]
    [item] = ex.decode(torch.tensor([codes]))
    frames = ex.interpolate("test:0", "test:1", steps=3)
    assert len(frames) == 3 and len(ex.sample(2, temperature=1.0)) == 2
    if output == "text":  # the greedy decoding of the posterior mean, as `vaekit reconstruct --text` gives it
        with torch.no_grad():
            want = ex.model.decode_text(*ex.model.decode_greedy(torch.tensor([codes])))[0]
        assert item == {"text": want}
    else:  # a piano roll and its MIDI rendered to sound
        import soundfile as sf

        wave, rate = sf.read(io.BytesIO(base64.b64decode(item["audio"].split(",", 1)[1])))
        assert rate == 8000 and len(wave) > 0 and item["image"].startswith("data:image/png")
        assert frames[0] == ex.decode(torch.tensor([ex.describe_example("test:0")["codes"][0]]))[0]
