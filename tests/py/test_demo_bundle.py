# Copyright (c) ctmr-skill authors. Licensed under the Apache License, Version 2.0.
"""The ctmr-skill DEMO bundle (synthetic intensity-based labels, NOT NV-Segment-CTMR),
run for real through `python -m monai.bundle run` with the same overrides ctmr-skill
passes to the upstream bundle, and checked with nibabel: float32 output at
<out>/<stem>/<stem>_trans.nii.gz on the input's grid, the expected label ids, prompts
restricting classes, and overlap with the synthetic ground truth (which a flipped or
shifted output would fail).

The bundle is copied to a temporary directory and given freshly generated weights,
so the tests never depend on (or modify) files in the checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_BUNDLE = REPO / "examples" / "demo-bundle"
SCRIPTS = REPO / "scripts"
DEMO_IDS = {1, 3, 5, 14, 28, 30, 37}
MRI_BODY_DEMO_IDS = {1, 3, 5, 14}  # lungs and vertebrae are not in upstream's MRI_BODY everything-set
RUN_TIMEOUT_S = 600


def upstream_configs() -> Path | None:
    for base in (REPO.parent / "shared", Path("/work/shared")):
        path = base / "upstream-data" / "NV-Segment-CTMR" / "configs"
        if (path / "metadata.json").is_file():
            return path
    return None


def run_script(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if check and proc.returncode != 0:
        pytest.fail(f"{args} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def run_bundle(bundle: Path, *overrides: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "monai.bundle", "run", *overrides]
    proc = subprocess.run(argv, cwd=bundle, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if expect_ok and proc.returncode != 0:
        pytest.fail(f"bundle run exited {proc.returncode}:\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}")
    return proc


def single(bundle: Path, image: Path, out: Path, modality: str, prompt: list[int] | None = None, **extra: str):
    input_dict = {"image": str(image)} if prompt is None else {"image": str(image), "label_prompt": prompt}
    args = ["--config_file", "configs/inference.json", "--input_dict", repr(input_dict),
            "--output_dir", str(out), "--modality", modality]
    for key, value in extra.items():
        args += [f"--{key}", value]
    return run_bundle(bundle, *args)


def mask_path(out: Path, image: Path) -> Path:
    stem = image.name[: -len(".nii.gz")]
    return out / stem / f"{stem}_trans.nii.gz"


def load_mask_checked(mask: Path, image: Path) -> np.ndarray:
    """Assert the upstream output contract (float32, the input's shape and affine); return the data."""
    assert mask.is_file(), f"expected output {mask}; found {sorted(p.name for p in mask.parent.parent.rglob('*'))}"
    out_img, in_img = nib.load(str(mask)), nib.load(str(image))
    assert out_img.get_data_dtype() == np.float32
    assert out_img.shape == in_img.shape
    assert np.abs(out_img.affine - in_img.affine).max() < 1e-4
    data = np.asarray(out_img.dataobj)
    assert np.all(np.isfinite(data)) and np.all(data == np.round(data)), "label map must hold integer ids"
    return data


def ids_present(data: np.ndarray) -> set[int]:
    return {int(v) for v in np.unique(data)} - {0}


def dice(pred: np.ndarray, truth: np.ndarray, label_id: int) -> float:
    p, t = pred == label_id, truth == label_id
    return 2.0 * float((p & t).sum()) / max(1.0, float(p.sum() + t.sum()))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle") / "demo-bundle"
    shutil.copytree(DEMO_BUNDLE, root, ignore=shutil.ignore_patterns("model.pt", "eval", "__pycache__"))
    run_script(SCRIPTS / "make-demo-weights.py", "--bundle-root", root)
    assert (root / "models" / "model.pt").is_file()
    return root


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> tuple[Path, np.ndarray]:
    data = tmp_path_factory.mktemp("data")
    image, labels = data / "demo_ct.nii.gz", data / "demo_ct_labels.nii.gz"
    run_script(SCRIPTS / "make-demo-volume.py", image, "--labels-out", labels)
    return image, np.asarray(nib.load(str(labels)).dataobj)


@pytest.fixture(scope="module")
def prompted_run(bundle, volume, tmp_path_factory):
    image, truth = volume
    out = tmp_path_factory.mktemp("out_prompted")
    proc = single(bundle, image, out, "CT_BODY", [1, 3])
    return load_mask_checked(mask_path(out, image), image), truth, proc


def test_prompted_run_writes_upstream_layout_and_only_prompted_classes(prompted_run):
    data, truth, _ = prompted_run
    assert ids_present(data) == {1, 3}
    assert dice(data, truth, 1) > 0.85 and dice(data, truth, 3) > 0.85


def test_run_says_it_is_the_demo(prompted_run):
    _, _, proc = prompted_run
    assert "NOT NV-Segment-CTMR" in proc.stdout + proc.stderr


def test_everything_run_ct_body_finds_every_demo_class_in_place(bundle, volume, tmp_path):
    image, truth = volume
    single(bundle, image, tmp_path, "CT_BODY")
    data = load_mask_checked(mask_path(tmp_path, image), image)
    assert ids_present(data) == DEMO_IDS
    for label_id in sorted(DEMO_IDS):
        assert dice(data, truth, label_id) > 0.85, f"label {label_id}: dice {dice(data, truth, label_id):.3f}"


def test_kidney_prompt_expands_to_its_subclasses_as_upstream(bundle, volume, tmp_path):
    image, truth = volume
    single(bundle, image, tmp_path, "CT_BODY", [2], patch_size="[64,64,64]")
    data = load_mask_checked(mask_path(tmp_path, image), image)
    assert ids_present(data) == {5, 14}
    assert dice(data, truth, 5) > 0.85 and dice(data, truth, 14) > 0.85


def test_mri_brain_everything_set_holds_no_demo_class(bundle, volume, tmp_path):
    image, _ = volume
    single(bundle, image, tmp_path, "MRI_BRAIN")
    assert ids_present(load_mask_checked(mask_path(tmp_path, image), image)) == set()


def test_batch_form_processes_each_volume_with_one_model_load(bundle, tmp_path):
    inputs = tmp_path / "in"
    a, b = inputs / "a.nii.gz", inputs / "b.nii.gz"
    run_script(SCRIPTS / "make-demo-volume.py", a)
    run_script(SCRIPTS / "make-demo-volume.py", b, "--shape", "80", "72", "48", "--spacing", "4", "4", "5", "--seed", "7")
    out = tmp_path / "out"
    proc = run_bundle(bundle, "--config_file", "['configs/inference.json', 'configs/batch_inference.json']",
                      "--input_dir", str(inputs), "--output_dir", str(out), "--modality", "MRI_BODY")
    for image in (a, b):
        assert ids_present(load_mask_checked(mask_path(out, image), image)) == MRI_BODY_DEMO_IDS
    assert (proc.stdout + proc.stderr).count("Restored all variables from") == 1


def test_batch_input_list_override_selects_files(bundle, volume, tmp_path):
    image, truth = volume
    decoy = tmp_path / "decoy.nii.gz"
    shutil.copy(image, decoy)
    out = tmp_path / "out"
    run_bundle(bundle, "--config_file", "['configs/inference.json', 'configs/batch_inference.json']",
               "--input_dir", str(tmp_path), "--input_list", repr([str(image)]),
               "--output_dir", str(out), "--modality", "CT_BODY")
    assert ids_present(load_mask_checked(mask_path(out, image), image)) == DEMO_IDS
    assert not mask_path(out, decoy).exists()


def test_point_prompts_are_refused_clearly(bundle, volume, tmp_path):
    image, _ = volume
    input_dict = {"image": str(image), "points": [[10, 10, 10]], "point_labels": [1]}
    proc = run_bundle(bundle, "--config_file", "configs/inference.json", "--input_dict", repr(input_dict),
                      "--output_dir", str(tmp_path), "--modality", "CT_BODY", expect_ok=False)
    assert proc.returncode != 0
    assert "supports only label_prompt" in proc.stdout + proc.stderr
    assert not any(tmp_path.rglob("*_trans.nii.gz"))


def test_metadata_is_labelled_demo_and_uses_upstream_ids_and_names():
    meta = json.loads((DEMO_BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["ctmr_skill_demo"] is True
    for key in ("name", "description"):
        assert "NOT NV-Segment-CTMR" in meta[key] and "not for clinical use" in meta[key]
    channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert {int(k) for k in channel_def} - {0} == DEMO_IDS
    upstream = upstream_configs()
    if upstream is None:
        pytest.skip("upstream-data/NV-Segment-CTMR not present beside the checkout")
    upstream_def = json.loads((upstream / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"][
        "channel_def"
    ]
    for key, name in channel_def.items():
        assert upstream_def[key] == name, f"id {key}: demo says {name!r}, upstream {upstream_def[key]!r}"
    mappings = json.loads((DEMO_BUNDLE / "configs" / "label_mappings.json").read_text())
    upstream_mappings = json.loads((upstream / "label_mappings.json").read_text())
    for dataset, pairs in mappings.items():
        assert upstream_mappings[dataset] == pairs


def test_demo_weights_are_deterministic(tmp_path):
    first, second = tmp_path / "1.pt", tmp_path / "2.pt"
    run_script(SCRIPTS / "make-demo-weights.py", "--out", first)
    run_script(SCRIPTS / "make-demo-weights.py", "--out", second)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_demo_volume_is_deterministic_and_oblique(tmp_path):
    first, second = tmp_path / "1.nii.gz", tmp_path / "2.nii.gz"
    run_script(SCRIPTS / "make-demo-volume.py", first)
    run_script(SCRIPTS / "make-demo-volume.py", second)
    img1, img2 = nib.load(str(first)), nib.load(str(second))
    assert np.array_equal(np.asarray(img1.dataobj), np.asarray(img2.dataobj))
    linear = img1.affine[:3, :3]
    assert np.count_nonzero(np.abs(linear - np.diag(np.diag(linear))) > 1e-3) > 0, "affine should be oblique"
    assert nib.aff2axcodes(img1.affine) != ("R", "A", "S"), "stored orientation should not already be RAS"


def test_demo_volume_rejects_bad_arguments(tmp_path):
    proc = run_script(SCRIPTS / "make-demo-volume.py", tmp_path / "x.nii.gz", "--shape", "4", "96", "64", check=False)
    assert proc.returncode != 0 and "--shape" in proc.stderr
    proc = run_script(SCRIPTS / "make-demo-volume.py", tmp_path / "x.txt", check=False)
    assert proc.returncode != 0 and "must end in .nii.gz" in proc.stderr


def test_standin_weights_marker_and_overwrite_refusal(tmp_path):
    # The demo bundle stands in for "a bundle whose config has a network_def": the
    # mechanics (marker, sha256, refusal) are the same as for NV-Segment-CTMR's vista3d132.
    root = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, root, ignore=shutil.ignore_patterns("model.pt", "eval", "__pycache__"))
    script = SCRIPTS / "make-standin-weights.py"
    run_script(script, "--root", root)
    model, marker = root / "models" / "model.pt", root / "models" / "STAND_IN_WEIGHTS.json"
    record = json.loads(marker.read_text())
    assert record["stand_in"] is True and "NOT a segmentation" in record["note"] and record["created_at"]
    assert record["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    run_script(script, "--root", root)  # a stand-in may be replaced by a stand-in

    model.write_bytes(b"pretend these are real weights")  # e.g. downloaded over the stand-in
    proc = run_script(script, "--root", root, check=False)
    assert proc.returncode == 2 and "refusing to overwrite" in proc.stderr
    assert model.read_bytes() == b"pretend these are real weights"

    marker.unlink()
    proc = run_script(script, "--root", root, check=False)
    assert proc.returncode == 2 and "no STAND_IN_WEIGHTS.json marker" in proc.stderr
    run_script(script, "--root", root, "--force")
    assert json.loads(marker.read_text())["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


@pytest.mark.skipif(
    not os.environ.get("CTMR_SKILL_UPSTREAM_BUNDLE"),
    reason="opt-in: set CTMR_SKILL_UPSTREAM_BUNDLE to a NV-Segment-CTMR bundle root (minutes on CPU)",
)
def test_real_upstream_bundle_runs_with_standin_weights(tmp_path):
    """The real NV-Segment-CTMR bundle on CPU with stand-in weights: the pipeline and the
    output contract, not the segmentation (random weights segment nothing meaningful)."""
    root = Path(os.environ["CTMR_SKILL_UPSTREAM_BUNDLE"]).resolve()
    if not (root / "models" / "model.pt").is_file():
        run_script(SCRIPTS / "make-standin-weights.py", "--root", root)
    image = tmp_path / "tiny_ct.nii.gz"
    run_script(SCRIPTS / "make-demo-volume.py", image, "--shape", "32", "32", "24", "--spacing", "3", "3", "3")
    out = tmp_path / "out"
    single(root, image, out, "CT_BODY", [1, 3], patch_size="[64,64,64]")
    assert ids_present(load_mask_checked(mask_path(out, image), image)) <= {1, 3}


# --- the bundle's Python components, in process (fast) ---------------------------------


@pytest.fixture(scope="module")
def demo_scripts():
    """The bundle's `scripts` package, imported under a private name so it cannot
    shadow anything else called `scripts`."""
    import importlib
    import importlib.util

    name = "ctmr_demo_bundle_scripts"
    spec = importlib.util.spec_from_file_location(
        name, DEMO_BUNDLE / "scripts" / "__init__.py", submodule_search_locations=[str(DEMO_BUNDLE / "scripts")]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return {
        "network": importlib.import_module(f"{name}.network"),
        "evaluator": importlib.import_module(f"{name}.evaluator"),
    }


def test_prompt_normalisation_accepts_collated_forms(demo_scripts):
    import torch

    prompt_ids = demo_scripts["evaluator"].prompt_ids
    assert prompt_ids(None) is None
    assert prompt_ids([1, 3]) == [1, 3]
    assert prompt_ids([torch.tensor([1]), torch.tensor([3])]) == [1, 3]  # what the DataLoader collates
    assert prompt_ids(torch.tensor([[1], [3]])) == [1, 3]
    with pytest.raises(ValueError, match="flat list"):
        prompt_ids([[1, 2]])
    with pytest.raises(ValueError, match="list of label ids"):
        prompt_ids("liver")


@pytest.mark.parametrize(
    "prompt, message",
    [([], "empty"), ([0], "outside the label vocabulary"), ([346], "outside the label vocabulary"),
     ([1, 16], "not a supported class prompt")],
)
def test_prompt_validation_refuses_what_upstream_refuses(demo_scripts, prompt, message):
    with pytest.raises(ValueError, match=message):
        demo_scripts["evaluator"].validate_prompt(prompt)


def test_band_network_labels_bands_and_drops_one_voxel_shells(demo_scripts):
    import torch

    net = demo_scripts["network"].IntensityBandNet(class_ids=[1, 3])
    net.load_state_dict({"class_ids": torch.tensor([1, 3]), "bands": torch.tensor([[50.0, 70.0], [40.0, 50.0]])})
    image = torch.zeros(1, 1, 12, 12, 12)
    image[..., 2:8, 2:8, 2:8] = 60.0  # a 6-voxel cube in band 1
    image[..., 9, 2:8, 2:8] = 45.0  # a one-voxel-thick sheet in band 3, as interpolation leaves
    logits = net(image, class_vector=torch.tensor([[3], [1], [6]]))
    assert logits.shape == (1, 3, 12, 12, 12)
    assert bool((logits[0, 1] > 0).sum() == 6**3) and bool((logits[0, 1][2:8, 2:8, 2:8] > 0).all())
    assert not bool((logits[0, 0] > 0).any()), "the thin sheet must be removed by the opening"
    assert bool((logits[0, 2] == net.background_logit).all()), "an id the demo does not know is never positive"


def test_band_network_refuses_a_checkpoint_for_other_ids(demo_scripts):
    import torch

    net = demo_scripts["network"].IntensityBandNet(class_ids=[1, 3])
    with pytest.raises(ValueError, match="make-demo-weights"):
        net.load_state_dict({"class_ids": torch.tensor([1, 5]), "bands": torch.zeros(2, 2)})
