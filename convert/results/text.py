"""How docs/RESULTS.md writes a value (a percentage, a size, a latency, a machine) and a run's
facts (its title, split, epochs, recipe); the default model's README writes them the same way."""
from __future__ import annotations

from .collect import Run, epochs_planned, g, scores, split_kind, split_name

# The paper's Table 2 (its protocol: a random 80/20 split of FER2013, 60 epochs): name, train and val accuracy.
PAPER = {"vanilla_cnn": ("Vanilla CNN", 0.682, 0.662), "residual_cnn": ("Residual+CNN", 0.724, 0.681),
         "resnet50": ("ResNet50+CNN", 0.857, 0.857)}
RANDOM_INIT = "random init — NOT the paper's method"
NOT_RUN = "not run"
SPLIT_TAG = {"random80": "paper's protocol", "official": "official split"}
SPLIT_WHY = {"random80": "split `random80`: the paper's protocol, a seeded stratified 80/20 split over all rows",
             "official": "split `official`: FER2013's own test rows (our copy has no PrivateTest, so PublicTest)"}
# report.json's version keys, then device.provenance.versions()'s distribution names
VERSIONS = (("TensorFlow", "tensorflow", "tensorflow-cpu"), ("Keras", "keras"),
            ("LiteRT", "ai_edge_litert", "ai-edge-litert"), ("numpy", "numpy"))


def pct(x, digits: int = 1) -> str:
    return NOT_RUN if x is None else f"{100 * float(x):.{digits}f}%"


def pp(x) -> str:
    return NOT_RUN if x is None else f"{float(x):+.2f} pp"


def size(n) -> str:
    return NOT_RUN if n is None else f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def ms(lat: dict | None) -> str:
    if g(lat, "median_ms") is None:
        return NOT_RUN
    return f"{lat['median_ms']:.3f} ms" + (f" ({lat['fps']:.0f}/s)" if lat.get("fps") else "")


def duration(s) -> str:
    if s is None or float(s) < 120:
        return "not recorded" if s is None else f"{float(s):.1f} s"
    h, m = divmod(int(round(float(s) / 60)), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def machine_text(m) -> str:
    if not isinstance(m, dict):
        return "not recorded"
    cpu = m.get("cpu") or m.get("processor") or m.get("machine") or "?"
    host = f", host {m['hostname']}" if m.get("hostname") else ""
    return f"{m.get('platform') or '?'} ({cpu}, {m.get('cpu_count', '?')} CPUs{host})" + \
        (f", Python {m['python']}" if m.get("python") else "")


def versions_text(v: dict) -> str:
    found = ((label, next((v[k] for k in keys if v.get(k)), None)) for label, *keys in VERSIONS)
    return ", ".join(f"{label} {x}" for label, x in found if x)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + \
        ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]


# --- a run's facts ------------------------------------------------------------------------------

def model_title(model: str) -> str:
    """The paper's name for its three models ("Vanilla CNN"), our own models' registry name."""
    return PAPER[model][0] if model in PAPER else model


def title(run: Run) -> str:
    name = model_title(run.model)
    return f"{name} ({RANDOM_INIT})" if run.random_init else name


def loop_fps(run: Run, name: str = "int8") -> str:
    fps = g(run.bench, "models", name, "loop", "1", "fps")
    if not fps:
        return NOT_RUN if not run.bench else "no clip in bench"
    # bench.json names its loop's detector since bench took --detector; before that it was always Haar
    return f"{fps:.1f} fps ({(run.bench or {}).get('detector', 'haar')})"


def split_text(run: Run, long: bool = False) -> str:
    name, kind, n = split_name(run), split_kind(run), scores(run, "keras").get("n") or run.metrics.get("n_test")
    ferplus = run.label_set == "ferplus"
    scheme = run.cfg.get("label_scheme") or g(run.metadata, "data", "label_scheme") or "?"
    if long:
        return (f"{name} (n={n})" if n else name) + f"; {SPLIT_WHY.get(kind, f'split `{kind}`')}. Model selection " \
            "used a validation set carved from the training rows." + (
                f" Labels: FER+ votes, scheme `{scheme}`; validated and scored on FER+ majority labels (faces FER+ "
                "marks as not a face, ties and unknown-won faces left out)." if ferplus else "")
    tags = [x for x in (f"n={n}" if n else "", SPLIT_TAG.get(kind), f"FER+ {scheme}" if ferplus else "") if x]
    return f"{name} ({', '.join(tags)})" if tags else name


def recovered_model(cfg: dict) -> dict | None:
    """``{"model", "sha256"}`` of the converted file a run folder was rebuilt from (``convert recover``), else None;
    a string ``recovered_from`` is another thing: records rebuilt from an earlier RESULTS.md."""
    rec = (cfg or {}).get("recovered_from")
    return rec if isinstance(rec, dict) and "model" in rec else None


def epochs_text(run: Run) -> str:
    if recovered_model(run.cfg):
        return "recovered (convert recover)"
    done, planned = run.metrics.get("epochs_run"), epochs_planned(run)
    return f"{'?' if done is None else done} / {'?' if planned is None else planned}"


def recipe_text(cfg: dict) -> str:
    opt = "Adam" if cfg.get("optimizer", "adam") == "adam" else f"SGD (Nesterov, momentum {cfg.get('momentum')})"
    warmup = f", warm-up {cfg['warmup']:.0%}" if cfg.get("warmup") else ""
    extras = ", ".join(f"{label} {cfg[k]}" for k, label in (("weight_decay", "weight decay"), ("erasing", "random erasing"),
                                                            ("label_smoothing", "label smoothing")) if cfg.get(k))
    return (f"- Recipe: preset `{cfg.get('preset')}`, {opt} lr {cfg.get('lr')} ({cfg.get('lr_schedule')}{warmup}), "
            f"batch {cfg.get('batch_size')}, class weights `{cfg.get('class_weights')}`, augmentation "
            f"{cfg.get('augmentation', 'paper') if cfg.get('augment', True) else 'off'}, seed {cfg.get('seed')}" + (f"; {extras}" if extras else "")
            + (f"; started from the weights of `{cfg['init_from']}` (train --init-from)" if cfg.get("init_from") else "")
            + (f"; distilled from {', '.join(f'`{t}`' for t in cfg['teachers'])} (train --teacher: weight "
               f"{cfg.get('distill_weight')}, temperature {cfg.get('distill_temperature')})" if cfg.get("teachers") else ""))
