"""Run by tests/python_wheel.rs inside a fresh virtual environment where
the mvault wheel, numpy and safetensors are installed: a small model is
written with safetensors, registered and promoted through the Python
module, pulled by stage, and its tensors compared. Usage:
    python wheel_roundtrip.py REPO KEY WORKDIR
"""

import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

import mvault

repo, key, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

# The binary is the one the wheel installed into this environment.
exe = Path(mvault.binary())
assert Path(sys.prefix) in exe.parents, f"mvault.binary() is {exe}, not in {sys.prefix}"

rng = np.random.default_rng(7)
tensors = {
    "embed.weight": rng.standard_normal((256, 64), dtype=np.float32),
    "head.bias": np.arange(10, dtype=np.int64),
}
model_dir = work / "model"
model_dir.mkdir()
save_file(tensors, str(model_dir / "model.safetensors"))
(model_dir / "config.json").write_text('{"hidden": 64}\n')

added = mvault.add(
    model_dir,
    model="nlp/bert",
    version="1.0.0",
    metrics={"f1": 0.91},
    metadata={"task": "ner"},
    repo=repo,
    key=key,
)
assert isinstance(added, mvault.Added), added
assert (added.model, added.version, added.files) == ("nlp/bert", "1.0.0", 2), added
assert added.tag == "nlp/bert@v1.0.0", added
assert added.pushed, "the clone has a remote: add pushes"

promoted = mvault.promote("nlp/bert@1.0.0", to="staging", reason="python test", repo=repo, key=key)
assert (promoted.to_stage, promoted.version) == ("staging", "1.0.0"), promoted

out = mvault.pull("nlp/bert#staging", work / "out", repo=repo, key=key)
back = load_file(str(out / "model.safetensors"))
assert back.keys() == tensors.keys(), back.keys()
for name, t in tensors.items():
    assert back[name].dtype == t.dtype and np.array_equal(back[name], t), name
assert (out / "config.json").read_text() == '{"hidden": 64}\n'

verified = mvault.verify("nlp/bert#staging", repo=repo, key=key)
assert (verified.version, verified.files) == ("1.0.0", 2), verified

[st] = mvault.status("nlp/bert", repo=repo, key=key)
assert st["model"] == "nlp/bert", st
events = mvault.log(model="nlp/bert", repo=repo, key=key)
assert [e["action"] for e in events][:2] == ["register", "promote"], events

# Errors carry mvault's kind, hint and exit code.
try:
    mvault.pull("nlp/bert#production", work / "none", repo=repo, key=key)
except mvault.UserError as e:
    assert e.kind == "user" and e.exit_code == 2, (e.kind, e.exit_code)
    assert "production" in e.message, e.message
else:
    raise AssertionError("pull of a stage nothing was promoted to succeeded")
assert not (work / "none").exists(), "a failed pull left its output directory"
try:
    mvault.add(model_dir, model="NLP/Bert", version="1.0.1", repo=repo, key=key)
except mvault.UserError as e:
    assert "NLP/Bert" in e.message, e.message
else:
    raise AssertionError("a model name with capitals was accepted")

print("python wheel round trip: ok")
