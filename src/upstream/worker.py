"""ctmr-skill warm worker: one MONAI bundle kept loaded between requests.

Started by ctmr-skill as `python -P worker.py SOCKET BUNDLE_ROOT` with the bundle root as
working directory. Each request carries the documented command's arguments (everything
after `python -m monai.bundle run`); the worker applies them exactly as that command does
(`fire`'s value parsing, then `ConfigWorkflow(config_file=..., **overrides)`, `initialize`,
`run`, `finalize`), except that the network object and its weights are built and loaded
once, on the first request, and handed to later requests' configs. A request that would
change the network, its weights or the device is refused ("fallback") and ctmr-skill runs
the documented command instead. Inference, transforms, the inferer and the writer are the
bundle's own, every time. Not for clinical use.

Protocol: one JSON object per line over a UNIX socket (never stdout, which the bundle may
print to). Worker -> server: {"event": "hello", ...facts}, then one reply per request.
"""

import contextlib
import copy
import json
import os
import platform
import socket
import sys
import time
import traceback

# Ids whose configuration decides the network, its weights and its device: a request
# may not change them, or the cached network would not be the one it asks for.
GUARDED = ("network_def", "network", "checkpointloader", "device", "bundle_root")


def facts():
    r = {
        "python_executable": sys.executable,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        r["torch_version"] = str(torch.__version__)
        r["cuda_available"] = bool(torch.cuda.is_available())
        r["cuda_device_name"] = torch.cuda.get_device_name(0) if r["cuda_available"] else None
    except Exception as e:  # noqa: BLE001 - reported, the server refuses to use us
        r["torch_error"] = type(e).__name__ + ": " + str(e)
    try:
        import monai

        r["monai_version"] = str(monai.__version__)
    except Exception as e:  # noqa: BLE001
        r["monai_error"] = type(e).__name__ + ": " + str(e)
    return r


def parse_arguments(argv):
    """`--key value` / `--key=value` pairs as fire (and so `monai.bundle run`) parses them."""
    from fire import parser as fire_parser

    kwargs = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise ValueError(f"unexpected argument {token!r}")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        else:
            value = argv[i + 1]
            i += 2
        kwargs[key] = fire_parser.DefaultParseValue(value)
    return kwargs


class Worker:
    def __init__(self, bundle_root):
        self.bundle_root = bundle_root
        self.network = None
        self.guard = None
        self.config_file = None
        self.load_seconds = None
        self.served = 0

    def workflow(self, kwargs):
        from monai.bundle.workflows import ConfigWorkflow

        config_file = kwargs.pop("config_file")
        return config_file, ConfigWorkflow(config_file=config_file, **kwargs)

    def serve(self, argv):
        kwargs = parse_arguments(argv)
        config_file, wf = self.workflow(kwargs)
        if self.network is None:
            t0 = time.monotonic()
            wf.initialize()
            self.network = wf.parser.get_parsed_content("network")
            self.guard = {k: copy.deepcopy(wf.parser.config.get(k)) for k in GUARDED}
            self.config_file = config_file
            self.load_seconds = time.monotonic() - t0
        else:
            why = self.cannot_reuse(config_file, wf)
            if why:
                return {"fallback": why}
            wf.parser["network"] = self.network
            init = wf.parser.config.get("initialize", [])
            wf.parser["initialize"] = [e for e in init if not (isinstance(e, str) and "@checkpointloader" in e)]
            wf.initialize()
            evaluator = wf.parser.get_parsed_content("evaluator") if "evaluator" in wf.parser else None
            if getattr(evaluator, "network", None) is not self.network:
                return {"fallback": "the bundle's evaluator does not use the config's `network`"}
        path = list(sys.path)
        try:
            wf.run()
            wf.finalize()
        finally:
            sys.path[:] = path
        self.served += 1
        return {"ok": True}

    def cannot_reuse(self, config_file, wf):
        if config_file != self.config_file:
            return f"another config list ({config_file!r}, the worker loaded {self.config_file!r})"
        for key in GUARDED:
            if wf.parser.config.get(key) != self.guard[key]:
                return f"the request changes `{key}`"
        return None


@contextlib.contextmanager
def captured(out, err):
    """Descriptors 1 and 2 point at this request's log files while it runs, so
    everything the bundle, MONAI's loggers or native code print lands there, as it
    does in the documented command's own output."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def handle(worker, request):
    logs = request["log_dir"]
    os.makedirs(logs, exist_ok=True)
    out_path = os.path.join(logs, "upstream.stdout.log")
    err_path = os.path.join(logs, "upstream.stderr.log")
    t0 = time.monotonic()
    with open(out_path, "w") as out, open(err_path, "w") as err, captured(out, err):
        try:
            reply = worker.serve(list(request["argv"]))
        except BaseException:  # noqa: BLE001 - the run failed; the worker lives on
            traceback.print_exc()
            reply = {"ok": False, "exit_code": 1}
    reply.setdefault("exit_code", 0 if reply.get("ok") else None)
    reply.update(
        id=request["id"],
        seconds=time.monotonic() - t0,
        served=worker.served,
        load_seconds=worker.load_seconds,
    )
    return reply


def main():
    sock_path, bundle_root = sys.argv[1], sys.argv[2]
    # The bundle's own `scripts` package imports (as under `monai.bundle run`), behind
    # site-packages, so nothing in the bundle root shadows an installed module.
    sys.path.append(bundle_root)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(sock_path)
    stream = conn.makefile("rwb", buffering=0)

    def send(obj):
        stream.write((json.dumps(obj) + "\n").encode())

    send({"event": "hello", "pid": os.getpid(), **facts()})
    worker = Worker(bundle_root)
    for line in stream:
        request = json.loads(line)
        send(handle(worker, request))


if __name__ == "__main__":
    main()
