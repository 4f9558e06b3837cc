"""Start `lakeforge serve` on the pipeline's model, ask it about flights of the last scored date and
compare its answers with the rows of the prediction table: the online/offline parity a user can
see. Run from the project root after `dvc repro` (make demo runs it); exit 1 on any difference.

Usage: python scripts/serve_check.py [ENTITIES] [--runtime onnx]   (default 5 entities, native runtime)

With ``--runtime onnx`` the server scores with the champion's ONNX export (`lakeforge export`):
its scores must agree with the table's within 1e-5 instead of bit for bit.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


ONNX_TOLERANCE = 1e-5


def main(count: int = 5, runtime: str = "native") -> int:
    from lakeforge.config import load_config
    from lakeforge.features.build import spec_from_config
    from lakeforge.lake.catalog import catalog_from_config
    from lakeforge.lake.delta import arrow_dataset

    root = Path.cwd()
    cfg = load_config([], conf_dir=root / "conf")
    catalog = catalog_from_config(cfg.storage, root)
    spec = spec_from_config(cfg)
    model = str(cfg.model.name)
    keys = list(spec.entity)
    table = arrow_dataset(catalog, f"predictions.{model}").to_table()
    last = max(table.column("run_date").to_pylist())
    rows = [r for r in table.to_pylist() if r["run_date"] == last and r["served"]]
    # The store keeps each entity's latest feature row: ask for the entities' last flights of the date.
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        if key not in latest or r[spec.event_time] > latest[key][spec.event_time]:
            latest[key] = r
    # ... whose latest feature row is that flight (the feature table may run past the scored dates).
    features = arrow_dataset(catalog, f"features.{spec.name}").to_table(columns=[*keys, spec.event_time])
    newest: dict[tuple[Any, ...], Any] = {}
    for f in features.to_pylist():
        key = tuple(f[k] for k in keys)
        if key in latest and (key not in newest or f[spec.event_time] > newest[key]):
            newest[key] = f[spec.event_time]
    comparable = sorted(k for k, r in latest.items() if newest.get(k) == r[spec.event_time])
    if not comparable:
        print(f"serve_check: no entity's latest feature row was scored on {last}", file=sys.stderr)
        return 1
    chosen = comparable[:: max(1, len(comparable) // count)][:count]

    port = _free_port()
    lakeforge = str(Path(sys.executable).parent / "lakeforge")
    server = subprocess.Popen([lakeforge, "serve", model, "--port", str(port), "--runtime", runtime], cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = _call(f"{base}/ready")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print(f"serve_check: `lakeforge serve {model}` did not become ready", file=sys.stderr)
                return 1
            time.sleep(0.5)
        request = {"entities": [dict(zip(keys, key, strict=True)) for key in chosen]}
        example = json.dumps({"entities": request["entities"][:1]})
        print(f"curl -s {base}/predict -H 'content-type: application/json' -d '{example}'")
        status, body = _call(f"{base}/predict", request)
        if status != 200:
            print(f"serve_check: /predict answered {status}: {body}", file=sys.stderr)
            return 1
        print(f"{'entity':<28} {'event time':<26} {'online score':>14} {'batch score':>14}  model")
        differ = 0
        for key, got in zip(chosen, body["predictions"], strict=True):
            want = latest[key]
            if runtime == "onnx":
                close = abs(got["score"] - want["score"]) <= ONNX_TOLERANCE
            else:
                close = got["score"] == want["score"]
            same = close and got["model_version"] == want["model_version"]
            differ += not same
            print(
                f"{' '.join(map(str, key)):<28} {got['event_time']:<26} {got['score']:>14.10f} {want['score']:>14.10f}"
                f"  v{got['model_version']} {'' if same else '  DIFFERENT'}"
            )
        if differ:
            print(f"serve_check: {differ} online answer(s) differ from predictions.{model}", file=sys.stderr)
            return 1
        agree = "equal" if runtime == "native" else f"(ONNX runtime) agree within {ONNX_TOLERANCE:g} with"
        print(f"serve_check: {len(chosen)} online answers {agree} their predictions.{model} rows of {last}")
        return 0
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen_runtime = "native"
    if "--runtime" in args:
        at = args.index("--runtime")
        chosen_runtime = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
    sys.exit(main(int(args[0]) if args else 5, chosen_runtime))
