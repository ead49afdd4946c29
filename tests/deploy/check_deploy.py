#!/usr/bin/env python3
"""Checks of deploy/ (Azure ML and Kubernetes) against the real proxy and entrypoints, without a
cluster, Azure, or Docker. Run by tests/deploy/run.sh, which provides the pinned packages
(requirements.txt) and builds the debug proxy.

    python tests/deploy/check_deploy.py [-k NAME_PART] [-v]

What it checks (each test prints ok/FAIL/skip; the last line is "N passed, N failed, N skipped"):
  - yamllint on every YAML file under deploy/;
  - each kustomization rendered by this file's own small renderer (plain resources, an image
    override, a ConfigMap generator with kustomize's name hash, JSON 6902 patches; anything else
    is refused), compared with `kubectl kustomize` when kubectl is installed;
  - every Kubernetes object, rendered or example, against the Kubernetes JSON schemas of
    K8S_VERSIONS (kubernetes-validate, offline, strict: unknown fields are errors);
  - references inside the manifests: Service and PodDisruptionBudget selectors, target ports,
    the HPA's target, Secret names and keys, the ConfigMap behind --config, the PodMonitor's port,
    the prometheus-adapter rule behind the HPA's metric;
  - the Azure ML YAML loaded by azure-ai-ml (the schema the `az ml` CLI uses) and the rules that
    tie its numbers to the proxy's (request timeout, concurrency, queue, drain, probes);
  - every proxy flag and AOP_* variable used anywhere exists in `azure-openai-proxy --help`, and
    every other variable is one the image's entrypoint (or its engine) reads; ports agree;
  - live: each container as the manifests describe it (the real entrypoint for the engine images,
    with a fake engine; the binary with the mounted proxy.toml for the proxy-only image), its
    probe paths, metrics, scoring route, and a clean exit on SIGTERM; proxy.toml also through
    --check-config;
  - the checks themselves: stale flags, variables, ports, paths and numbers must be caught.
"""

import argparse
import concurrent.futures
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
AML = DEPLOY / "azureml"
DOCKERFILE = REPO / "Dockerfile"
FAKE_ENGINE = HERE / "fake_engine.py"
BIN = Path(os.environ.get("AOP_PROXY_BIN") or REPO / "target" / "debug" / "azure-openai-proxy")

# Oldest and newest Kubernetes the manifests are meant for (kubernetes-validate ships both).
K8S_VERSIONS = ("1.30.0", "1.37.0")
# Azure ML's ceiling for request_settings.request_timeout_ms.
AML_MAX_REQUEST_TIMEOUT_MS = 180_000
# The entrypoints give the proxy AOP_SHUTDOWN_TIMEOUT + 5 s before they SIGKILL it.
ENTRYPOINT_DRAIN_MARGIN = 5
# Least time the readiness probes must allow for a model's download and load.
MIN_MODEL_LOAD_SECONDS = 600
# Variables an engine reads itself, though its entrypoint never mentions them (docs/containers.md:
# "TGI and TEI read it themselves"; HF_TOKEN reaches every engine).
ENGINE_NATIVE_ENV = {
    "vllm": {"HF_TOKEN"},
    "sglang": {"HF_TOKEN"},
    "tgi": {"HF_TOKEN", "MODEL_ID"},
    "tei-cpu": {"HF_TOKEN", "MODEL_ID"},
    "tei-gpu": {"HF_TOKEN", "MODEL_ID"},
}
# The engine flag that caps what it works on at once; the proxy's --max-concurrent-requests must
# not exceed it.
ENGINE_CONCURRENCY_FLAG = {
    "vllm": "--max-num-seqs",
    "sglang": "--max-running-requests",
    "tgi": "--max-concurrent-requests",
    "tei-cpu": "--max-concurrent-requests",
    "tei-gpu": "--max-concurrent-requests",
}
GPU_TARGETS = {"vllm", "tgi", "sglang", "tei-gpu"}
TEST_KEY = "deploy-test-key"
CHAT_BODY = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
EMBED_BODY = {"input": ["hello"]}
MI_API_VERSION = "2024-05-01-preview"
AOAI_API_VERSION = "2024-10-21"

VERBOSE = False


class Skip(Exception):
    """A test that cannot run here (a missing optional tool)."""


def rel(path):
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# ---- the binary's help: flags, variables, defaults ---------------------------------------------

class ProxyHelp:
    def __init__(self, text):
        self.flags = set()
        self.env_flag = {}  # AOP_PORT -> --port
        self.defaults = {}  # --port -> "80"
        flag = None
        for line in text.splitlines():
            m = re.match(r"^\s{2,}(?:-\w, )?(--[a-z0-9][a-z0-9-]*)", line)
            if m:
                flag = m.group(1)
                self.flags.add(flag)
                continue
            m = re.search(r"\[env: ([A-Z0-9_]+)", line)
            if m and flag:
                self.env_flag[m.group(1)] = flag
            m = re.search(r"\[default: ([^\]]+)\]", line)
            if m and flag:
                self.defaults[flag] = m.group(1)
        if "--port" not in self.flags or not self.env_flag:
            raise RuntimeError("could not parse `azure-openai-proxy --help`")

    def default(self, env_name, fallback=None):
        value = self.defaults.get(self.env_flag.get(env_name, ""))
        return fallback if value is None else value


_HELP = None


def proxy_help():
    global _HELP
    if _HELP is None:
        out = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, timeout=30, check=True)
        _HELP = ProxyHelp(out.stdout)
    return _HELP


# ---- the Dockerfiles and entrypoints -----------------------------------------------------------

def dockerfile_stages(path):
    """{stage name: {"env": {...}, "copies": {dest: src}, "entrypoint": [...], "cmd": [...]}}; the
    last stage is also under "" (the image a plain `docker build` makes)."""
    lines, buf = [], ""
    for raw in Path(path).read_text().splitlines():
        if not buf and raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        lines.append(buf + raw)
        buf = ""
    stages, stage = {}, None
    for line in lines:
        parts = line.strip().split(None, 1)
        if not parts:
            continue
        instr, rest = parts[0].upper(), (parts[1] if len(parts) > 1 else "")
        if instr == "FROM":
            m = re.search(r"\s+AS\s+(\S+)", rest, re.I)
            stage = {"env": {}, "copies": {}, "entrypoint": None, "cmd": None}
            stages[m.group(1) if m else f"#{len(stages)}"] = stage
            stages[""] = stage
        elif stage is None:
            continue
        elif instr == "ENV":
            if "=" in rest.split()[0]:
                for k, v in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)', rest):
                    stage["env"][k] = v.strip('"')
            else:
                k, v = rest.split(None, 1)
                stage["env"][k] = v.strip()
        elif instr == "COPY":
            words = [w for w in rest.split() if not w.startswith("--")]
            if not any(w.startswith("--from") for w in rest.split()):
                for src in words[:-1]:
                    stage["copies"][words[-1]] = src
        elif instr in ("ENTRYPOINT", "CMD"):
            stage[instr.lower()] = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
    return stages


def entrypoint_script(target):
    stage = dockerfile_stages(DOCKERFILE).get(target)
    if not stage or not stage["entrypoint"]:
        raise AssertionError(f"the Dockerfile has no target '{target}' with an ENTRYPOINT")
    src = stage["copies"].get(stage["entrypoint"][0])
    if not src or not (REPO / src).is_file():
        raise AssertionError(f"target '{target}': no file of the repository is copied to {stage['entrypoint'][0]}")
    return REPO / src, stage


def entrypoint_env_names(script):
    """The variables an entrypoint reads: $NAME / ${NAME...} references and `env -u NAME`, outside
    comments, minus the script's own top-level assignments (NAME=...)."""
    code = [line for line in Path(script).read_text().splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(code)
    names = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text)) | set(re.findall(r"-u ([A-Z][A-Z0-9_]*)", text))
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M))
    return names - assigned


# ---- YAML and the kustomize subset -------------------------------------------------------------

def load_docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]


def kustomize_hash(obj):
    """kustomize's name suffix for a generated ConfigMap (api/hasher): sha256 of the JSON of
    {data, kind, name} (kustomize reads the name as "" there), first 10 hex digits with 0 1 3 a e
    replaced by g h k m t. Go's json.Marshal escapes <, > and &."""
    encoded = json.dumps({"data": obj.get("data") or "", "kind": "ConfigMap", "name": ""},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for c, e in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        encoded = encoded.replace(c, e)
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "images", "patches", "configMapGenerator"}
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def pod_spec(obj):
    if obj.get("kind") in POD_OWNERS:
        return obj.get("spec", {}).get("template", {}).get("spec", {})
    return None


def containers_of(spec):
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def json_pointer_op(doc, op):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op["op"] == "remove":
            del parent[index]
        elif op["op"] == "replace":
            parent[index] = op["value"]
        elif op["op"] == "add":
            parent.insert(index, op["value"])
        else:
            raise ValueError(f"patch op '{op['op']}' is not supported here")
    else:
        if op["op"] == "remove":
            del parent[last]
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in parent:
                raise KeyError(op["path"])
            parent[last] = op["value"]
        else:
            raise ValueError(f"patch op '{op['op']}' is not supported here")


def render_kustomization(directory):
    """The objects `kubectl kustomize DIRECTORY` makes, for the features deploy/ uses."""
    directory = Path(directory)
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kust) - KUSTOMIZATION_KEYS
    if unknown:
        raise ValueError(f"{rel(directory)}/kustomization.yaml uses {sorted(unknown)}, which "
                         "tests/deploy's renderer does not implement: keep to its subset or extend it")
    objects = []
    for entry in kust.get("resources") or []:
        path = directory / entry
        objects += render_kustomization(path) if path.is_dir() else load_docs(path)
    objects = copy.deepcopy(objects)
    renames = {}
    for gen in kust.get("configMapGenerator") or []:
        if set(gen) - {"name", "files"}:
            raise ValueError(f"configMapGenerator {gen.get('name')}: only name and files are implemented")
        data = {}
        for f in gen["files"]:
            key, _, source = f.partition("=") if "=" in f else (Path(f).name, "", f)
            data[key] = (directory / source).read_text()
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}
        cm["metadata"]["name"] = f"{gen['name']}-{kustomize_hash(cm)}"
        renames[gen["name"]] = cm["metadata"]["name"]
        objects.append(cm)
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for vol in spec.get("volumes") or []:
            if "configMap" in vol and vol["configMap"].get("name") in renames:
                vol["configMap"]["name"] = renames[vol["configMap"]["name"]]
        for c in containers_of(spec):
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
                if ref and ref.get("name") in renames:
                    ref["name"] = renames[ref["name"]]
            for e in c.get("envFrom") or []:
                ref = e.get("configMapRef")
                if ref and ref.get("name") in renames:
                    ref["name"] = renames[ref["name"]]
    for patch in kust.get("patches") or []:
        target = patch.get("target") or {}
        if set(patch) - {"target", "patch"} or set(target) - {"kind", "name"}:
            raise ValueError("patches: only inline JSON 6902 patches with a kind/name target are implemented")
        ops = yaml.safe_load(patch["patch"])
        if not isinstance(ops, list):
            raise ValueError("patches: only JSON 6902 patches (a list of operations) are implemented")
        hits = [o for o in objects if o.get("kind") == target.get("kind", o.get("kind"))
                and o["metadata"]["name"] == target.get("name", o["metadata"]["name"])]
        if not hits:
            raise ValueError(f"patch target {target} matches no object")
        for obj in hits:
            for op in ops:
                json_pointer_op(obj, op)
    for image in kust.get("images") or []:
        for obj in objects:
            spec = pod_spec(obj)
            for c in containers_of(spec) if spec else []:
                name, tag = split_image(c["image"])
                if name == image["name"]:
                    c["image"] = image.get("newName", name) + (":" + image["newTag"] if "newTag" in image
                                                               else (tag or ""))
    return objects


def split_image(image):
    """("registry/name", ":tag" or "@digest" or None)."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, None


def kustomization_dirs():
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


_RENDERS = {}
_RENDER_LOCK = threading.Lock()


def rendered(directory):
    with _RENDER_LOCK:
        if directory not in _RENDERS:
            _RENDERS[directory] = render_kustomization(directory)
        return _RENDERS[directory]


def key_of(obj):
    return (obj.get("kind"), obj.get("metadata", {}).get("name"))


# ---- launches: one container as a manifest starts it -------------------------------------------

class Launch:
    """What a manifest makes the container run, normalised across Kubernetes and Azure ML."""

    def __init__(self, where, target, stage, args, env, port, metrics_port, probes, kind,
                 config_files=None, secret_refs=None, grace=None, prestop=0, gpus=None,
                 deployment=None, scoring=None):
        self.where = where
        self.target = target  # Dockerfile target of an engine image; None: the proxy-only image
        self.stage = stage  # that stage of its Dockerfile
        self.args = args  # the container's arguments (None: the image's CMD)
        self.env = env  # name -> value, secrets filled with test values
        self.port = port  # the port the manifest sends traffic and probes to
        self.metrics_port = metrics_port  # the port it declares for metrics (None: none)
        self.probes = probes  # {"liveness": path, "readiness": path, "startup": path}
        self.kind = kind  # "chat" or "embeddings"
        self.config_files = config_files or {}  # container path -> local file
        self.secret_refs = secret_refs or []  # (secret, key, optional)
        self.grace = grace
        self.prestop = prestop
        self.gpus = gpus
        self.deployment = deployment
        self.scoring = scoring  # the path that must answer a POST (Azure ML's scoring route)

    @property
    def is_proxy_only(self):
        return self.target is None

    def proxy_args(self):
        return list(self.args or []) if self.is_proxy_only else []

    def arg_value(self, flag):
        args = self.proxy_args()
        value = None
        for i, a in enumerate(args):
            if a == flag and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith(flag + "="):
                value = a.split("=", 1)[1]
        return value

    def setting(self, env_name):
        """A proxy setting as it takes effect: flag, else the manifest's variable, else the
        image's, else the binary's default."""
        help_ = proxy_help()
        flag = help_.env_flag.get(env_name)
        value = self.arg_value(flag) if flag else None
        if value is None:
            value = self.env.get(env_name, self.stage["env"].get(env_name))
        if value is None:
            value = help_.default(env_name)
        return value

    def engine_args(self):
        """The engine's arguments as the entrypoint assembles them: the container's (or the
        image's CMD), then ENGINE_ARGS."""
        base = self.args if self.args is not None else (self.stage.get("cmd") or [])
        return list(base) + self.env.get("ENGINE_ARGS", "").split()


def last_flag_value(args, flag):
    value = None
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def secret_examples():
    """Secret name -> set of keys, from every secret.example.yaml under deploy/kubernetes."""
    found = {}
    for path in K8S.rglob("secret.example.yaml"):
        for doc in load_docs(path):
            if doc.get("kind") == "Secret":
                keys = set((doc.get("stringData") or {}).keys()) | set((doc.get("data") or {}).keys())
                found.setdefault(doc["metadata"]["name"], set()).update(keys)
    return found


def k8s_launches(directory):
    objects = rendered(directory)
    configmaps = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ConfigMap"}
    launches = []
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        spec = pod_spec(obj)
        target = (obj["metadata"].get("annotations") or {}).get("azure-openai-proxy/dockerfile-target")
        if target:
            _, stage = entrypoint_script(target)
        else:
            dockerfile = directory / "Dockerfile"
            if not dockerfile.is_file():
                raise AssertionError(f"{rel(directory)}: Deployment {obj['metadata']['name']} names no "
                                     "dockerfile-target and the directory has no Dockerfile")
            stage = dockerfile_stages(dockerfile)[""]
        for c in spec.get("containers") or []:
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
            env, refs = {}, []
            for e in c.get("env") or []:
                if "value" in e:
                    env[e["name"]] = str(e["value"])
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    refs.append((ref["name"], ref["key"], bool(ref.get("optional"))))
                    env[e["name"]] = TEST_KEY if ref["key"] == "api-keys" else f"test-{ref['key']}"
            probes = {}
            for name in ("liveness", "readiness", "startup"):
                probe = c.get(f"{name}Probe")
                if probe and "httpGet" in probe:
                    port = probe["httpGet"]["port"]
                    probes[name] = (probe["httpGet"]["path"], ports.get(port, port))
            files = {}
            volumes = {v["name"]: v for v in spec.get("volumes") or []}
            for m in c.get("volumeMounts") or []:
                cm = volumes.get(m["name"], {}).get("configMap")
                if cm and cm["name"] in configmaps:
                    for key, text in configmaps[cm["name"]]["data"].items():
                        files[f"{m['mountPath'].rstrip('/')}/{key}"] = text
            prestop = 0
            pre = ((c.get("lifecycle") or {}).get("preStop") or {})
            if "sleep" in pre:
                prestop = int(pre["sleep"]["seconds"])
            elif "exec" in pre:
                cmd = pre["exec"]["command"]
                if Path(cmd[0]).name == "sleep":
                    prestop = int(cmd[1])
            limits = (c.get("resources") or {}).get("limits") or {}
            launches.append(Launch(
                where=f"{rel(directory)}: Deployment {obj['metadata']['name']}, container {c['name']}",
                target=target, stage=stage, args=c.get("args"), env=env,
                port=ports.get("http"), metrics_port=ports.get("metrics"),
                probes=probes, kind="embeddings" if target and target.startswith("tei") else "chat",
                config_files=files, secret_refs=refs, grace=spec.get("terminationGracePeriodSeconds", 30),
                prestop=prestop, gpus=limits.get("nvidia.com/gpu"), deployment=obj["metadata"]["name"],
                scoring=None))
    return launches


# ---- static checks of one launch ---------------------------------------------------------------

def as_int(value, what, problems):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        problems.append(f"{what} is not a number: {value!r}")
        return None


def check_launch(launch):
    """Flags, variables, ports, probes, drain and concurrency of one container: a list of problems."""
    help_ = proxy_help()
    problems = []
    where = launch.where
    # Flags (only the proxy-only image passes its arguments to the proxy).
    for a in launch.proxy_args():
        if a.startswith("--"):
            flag = a.split("=", 1)[0]
            if flag not in help_.flags:
                problems.append(f"{where}: flag {flag} is not in `azure-openai-proxy --help`")
    # Variables.
    if launch.is_proxy_only:
        config_path = launch.arg_value("--config") or launch.env.get("AOP_CONFIG")
        config_text = launch.config_files.get(config_path or "", "")
        try:
            engine_keys = {u["api_key_env"] for u in tomllib.loads(config_text).get("upstreams", [])
                           if "api_key_env" in u}
        except tomllib.TOMLDecodeError as e:
            problems.append(f"{where}: the config file is not TOML: {e}")
            engine_keys = set()
        known_other = engine_keys | {"RUST_LOG", "NO_COLOR"}
        for name in engine_keys - set(launch.env):
            problems.append(f"{where}: proxy.toml's api_key_env {name} is not set in the container")
        if config_path and config_path not in launch.config_files:
            problems.append(f"{where}: --config {config_path} is not a file mounted from a ConfigMap of the render")
        if launch.stage.get("entrypoint") and Path(launch.stage["entrypoint"][0]).name != "azure-openai-proxy":
            problems.append(f"{where}: the proxy-only image's ENTRYPOINT is not the proxy: {launch.stage['entrypoint']}")
    else:
        script, _ = entrypoint_script(launch.target)
        known_other = entrypoint_env_names(script) | ENGINE_NATIVE_ENV.get(launch.target, set())
    for name in launch.env:
        if name.startswith("AOP_"):
            if name not in help_.env_flag:
                problems.append(f"{where}: {name} is not a variable of `azure-openai-proxy --help`")
        elif name not in known_other:
            problems.append(f"{where}: {name} is read neither by the proxy nor by "
                            f"{'its engine or entrypoint' if launch.target else 'proxy.toml'}")
    # Ports.
    port = launch.setting("AOP_PORT") if launch.is_proxy_only else (
        launch.env.get("AOP_PORT") or launch.env.get("PORT") or launch.stage["env"].get("AOP_PORT")
        or launch.stage["env"].get("PORT") or "80")
    if launch.port is None:
        problems.append(f"{where}: no port named http (or inference_config port) to send traffic to")
    elif str(launch.port) != str(port):
        problems.append(f"{where}: traffic goes to port {launch.port} but the proxy listens on {port}")
    metrics = launch.setting("AOP_METRICS_PORT")
    if launch.metrics_port is not None or metrics is not None:
        if str(launch.metrics_port) != str(metrics):
            problems.append(f"{where}: the container declares metrics port {launch.metrics_port} but the "
                            f"proxy serves metrics on {metrics}")
    for name, (path, probe_port) in launch.probes.items():
        if str(probe_port) != str(launch.port):
            problems.append(f"{where}: the {name} probe goes to port {probe_port}, not the proxy's {launch.port}")
    expected = {"liveness": {"/health"}, "readiness": {"/ready"}, "startup": {"/ready", "/health"}}
    if launch.is_proxy_only:
        expected["readiness"] = {"/ready", "/health"}
    for name in ("liveness", "readiness"):
        if name not in launch.probes:
            problems.append(f"{where}: no {name} probe")
    for name, (path, _) in launch.probes.items():
        if path not in expected[name]:
            problems.append(f"{where}: the {name} probe asks {path}; expected {' or '.join(sorted(expected[name]))}")
    # Drain: the pod's grace period covers the preStop sleep and the proxy's (and engine's) stop.
    if launch.grace is not None:
        shutdown = as_int(launch.setting("AOP_SHUTDOWN_TIMEOUT"), f"{where}: AOP_SHUTDOWN_TIMEOUT", problems)
        need = launch.prestop + (shutdown or 0)
        if not launch.is_proxy_only:
            engine_stop = as_int(launch.env.get("ENGINE_STOP_TIMEOUT", "30"), f"{where}: ENGINE_STOP_TIMEOUT", problems)
            need += ENTRYPOINT_DRAIN_MARGIN + (engine_stop or 0)
        if launch.grace <= need:
            problems.append(f"{where}: terminationGracePeriodSeconds {launch.grace} must exceed preStop sleep "
                            f"({launch.prestop}) + drain ({need - launch.prestop}) = {need}")
    # Concurrency: the engine must take what the proxy sends it at once.
    limit = as_int(launch.setting("AOP_MAX_CONCURRENT_REQUESTS"), f"{where}: AOP_MAX_CONCURRENT_REQUESTS", problems)
    if launch.target and limit:
        flag = ENGINE_CONCURRENCY_FLAG[launch.target]
        engine_cap = last_flag_value(launch.engine_args(), flag)
        if engine_cap is None:
            problems.append(f"{where}: the proxy limits concurrency to {limit} but the engine's {flag} is not set")
        elif int(engine_cap) < limit:
            problems.append(f"{where}: AOP_MAX_CONCURRENT_REQUESTS {limit} exceeds the engine's {flag} {engine_cap}")
    if launch.target in GPU_TARGETS and launch.gpus is not None and int(launch.gpus) < 1:
        problems.append(f"{where}: a GPU image without a GPU")
    return problems


def check_k8s_render(directory):
    """References between the objects of one rendered kustomization."""
    objects = rendered(directory)
    problems = []
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    pods = [(o, pod_spec(o), o["spec"]["template"]["metadata"].get("labels") or {}) for o in by_kind.get("Deployment", [])]

    def matching(selector):
        return [p for p in pods if selector and all(p[2].get(k) == v for k, v in selector.items())]

    for svc in by_kind.get("Service", []):
        hits = matching(svc["spec"].get("selector") or {})
        if not hits:
            problems.append(f"{rel(directory)}: Service {svc['metadata']['name']} selects no pod")
        for port in svc["spec"]["ports"]:
            for dep, spec, _ in hits:
                names = {p.get("name"): p["containerPort"] for c in spec["containers"] for p in c.get("ports") or []}
                target = port.get("targetPort", port["port"])
                if target not in names and target not in names.values():
                    problems.append(f"{rel(directory)}: Service {svc['metadata']['name']} targets port {target}, "
                                    f"which Deployment {dep['metadata']['name']} does not declare")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not matching(pdb["spec"]["selector"].get("matchLabels") or {}):
            problems.append(f"{rel(directory)}: PodDisruptionBudget {pdb['metadata']['name']} selects no pod")
    deployments = {o["metadata"]["name"]: o for o in by_kind.get("Deployment", [])}
    launches = {launch.deployment: launch for launch in k8s_launches(directory)}
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["kind"] != "Deployment" or ref["name"] not in deployments:
            problems.append(f"{rel(directory)}: HPA {hpa['metadata']['name']} scales {ref['kind']} {ref['name']}, "
                            "which the render does not contain")
            continue
        if "replicas" in deployments[ref["name"]]["spec"]:
            problems.append(f"{rel(directory)}: Deployment {ref['name']} sets replicas although HPA "
                            f"{hpa['metadata']['name']} owns them (each apply would reset the count)")
        launch = launches.get(ref["name"])
        limit = int(launch.setting("AOP_MAX_CONCURRENT_REQUESTS") or 0) if launch else 0
        for metric in hpa["spec"].get("metrics") or []:
            if metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "azure_openai_proxy_requests_in_flight":
                target = float(metric["pods"]["target"]["averageValue"])
                if limit and not target < limit:
                    problems.append(f"{rel(directory)}: HPA target {target} in flight per pod is not below "
                                    f"AOP_MAX_CONCURRENT_REQUESTS {limit}: pods would queue before it scales")
    secrets = secret_examples()
    for launch in launches.values():
        for name, key, optional in launch.secret_refs:
            if key not in secrets.get(name, set()):
                problems.append(f"{launch.where}: Secret {name} key {key} is not in any secret.example.yaml")
    return problems


def hpa_metrics():
    """Deployment name -> Pods metric names its HPAs use, over every render."""
    found = {}
    for d in kustomization_dirs():
        for o in rendered(d):
            if o["kind"] == "HorizontalPodAutoscaler":
                for m in o["spec"].get("metrics") or []:
                    if m["type"] == "Pods":
                        found.setdefault(o["spec"]["scaleTargetRef"]["name"], set()).add(m["pods"]["metric"]["name"])
    return found


# ---- Azure ML ----------------------------------------------------------------------------------

def aml_files():
    endpoints = sorted(AML.glob("endpoint-*.yml"))
    deployments = sorted(AML.glob("deployment-*.yml"))
    return endpoints, deployments


def aml_launch(deployment):
    """A loaded azure-ai-ml ManagedOnlineDeployment as a Launch (Azure ML passes no arguments)."""
    target = (deployment.tags or {}).get("dockerfile-target")
    if not target:
        raise AssertionError(f"deployment {deployment.name}: tags.dockerfile-target names no Dockerfile target")
    _, stage = entrypoint_script(target)
    ic = deployment.environment.inference_config or {}
    routes = {k: ic.get(f"{k}Route") or {} for k in ("liveness", "readiness", "scoring")}
    ports = {r.get("port") for r in routes.values()}
    return Launch(
        where=f"deploy/azureml: deployment {deployment.name}", target=target, stage=stage, args=None,
        env={k: str(v) for k, v in (deployment.environment_variables or {}).items()},
        port=routes["scoring"].get("port") if len(ports) == 1 else None, metrics_port=None,
        probes={k: (routes[k].get("path"), routes[k].get("port")) for k in ("liveness", "readiness")},
        kind="embeddings" if target.startswith("tei") else "chat", grace=None,
        gpus=None, deployment=deployment.name, scoring=routes["scoring"].get("path"))


def check_aml_deployment(deployment, endpoint_names):
    """Azure ML's own limits and the rules tying its settings to the proxy's."""
    problems = []
    where = f"deploy/azureml: deployment {deployment.name}"
    launch = aml_launch(deployment)
    if deployment.endpoint_name not in endpoint_names:
        problems.append(f"{where}: endpoint_name {deployment.endpoint_name} is none of the endpoint files' "
                        f"names {sorted(endpoint_names)}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]", deployment.name or ""):
        problems.append(f"{where}: a deployment name is 3-32 letters, digits and hyphens, starting with a letter")
    if not getattr(deployment.environment, "image", None):
        problems.append(f"{where}: environment.image is missing")
    if not deployment.instance_type or not deployment.instance_count or deployment.instance_count < 1:
        problems.append(f"{where}: instance_type and instance_count (>= 1) are required")
    elif launch.target in GPU_TARGETS and not re.match(r"Standard_N[CDV]", deployment.instance_type):
        problems.append(f"{where}: the {launch.target} image needs a GPU instance (Standard_NC/ND/NV...), "
                        f"not {deployment.instance_type}")
    ic = deployment.environment.inference_config or {}
    if set(ic) != {"livenessRoute", "readinessRoute", "scoringRoute"}:
        problems.append(f"{where}: inference_config needs liveness_route, readiness_route and scoring_route")
    rs = deployment.request_settings
    timeout_ms = getattr(rs, "request_timeout_ms", None) or 5000
    per_instance = getattr(rs, "max_concurrent_requests_per_instance", None) or 1
    if timeout_ms > AML_MAX_REQUEST_TIMEOUT_MS:
        problems.append(f"{where}: request_timeout_ms {timeout_ms} exceeds Azure ML's maximum {AML_MAX_REQUEST_TIMEOUT_MS}")
    timeout_s = timeout_ms / 1000

    def num(name):
        return float(launch.setting(name))

    limit = num("AOP_MAX_CONCURRENT_REQUESTS")
    if limit != per_instance:
        problems.append(f"{where}: max_concurrent_requests_per_instance {per_instance} must equal "
                        f"AOP_MAX_CONCURRENT_REQUESTS {limit:g}")
    if num("AOP_MAX_QUEUED_REQUESTS") < per_instance:
        problems.append(f"{where}: AOP_MAX_QUEUED_REQUESTS {num('AOP_MAX_QUEUED_REQUESTS'):g} is below "
                        f"max_concurrent_requests_per_instance {per_instance}: Azure ML lets 2 x that reach an "
                        "instance, and the proxy's 429 would reach clients as a 424")
    waited = num("AOP_QUEUE_TIMEOUT") + num("AOP_UPSTREAM_HEADERS_TIMEOUT")
    if not waited < timeout_s:
        problems.append(f"{where}: AOP_QUEUE_TIMEOUT + AOP_UPSTREAM_HEADERS_TIMEOUT = {waited:g} s must be below "
                        f"request_timeout_ms ({timeout_s:g} s)")
    if not num("AOP_UPSTREAM_IDLE_TIMEOUT") < timeout_s:
        problems.append(f"{where}: AOP_UPSTREAM_IDLE_TIMEOUT {num('AOP_UPSTREAM_IDLE_TIMEOUT'):g} s must be below "
                        f"request_timeout_ms ({timeout_s:g} s)")
    if num("AOP_SHUTDOWN_TIMEOUT") < timeout_s:
        problems.append(f"{where}: AOP_SHUTDOWN_TIMEOUT {num('AOP_SHUTDOWN_TIMEOUT'):g} s is shorter than a request "
                        f"may last (request_timeout_ms {timeout_s:g} s)")
    rp = deployment.readiness_probe
    budget = (rp.initial_delay or 10) + (rp.period or 10) * (rp.failure_threshold or 30) if rp else 10 + 10 * 30
    if budget < MIN_MODEL_LOAD_SECONDS:
        problems.append(f"{where}: the readiness probe allows {budget} s for the model to load "
                        f"(initial_delay + period x failure_threshold); at least {MIN_MODEL_LOAD_SECONDS} s expected")
    env = launch.env
    if not any(env.get(k) for k in ("API_KEY", "AOP_API_KEYS", "AOP_API_KEY_FILE")):
        if env.get("AOP_ALLOW_UNAUTHENTICATED", "").lower() != "true":
            problems.append(f"{where}: no API key, so the open endpoint must be opted into explicitly "
                            "(AOP_ALLOW_UNAUTHENTICATED: \"true\") behind Azure ML's authentication")
    return problems + check_launch(launch)


_AML_LOADED = None


def aml_loaded():
    """(endpoints, deployments) as azure-ai-ml loads them; schema errors raise."""
    global _AML_LOADED
    if _AML_LOADED is None:
        from azure.ai.ml import load_online_deployment, load_online_endpoint
        endpoints, deployments = aml_files()
        _AML_LOADED = ([load_online_endpoint(str(p)) for p in endpoints],
                       [load_online_deployment(str(p)) for p in deployments])
    return _AML_LOADED


# ---- processes and HTTP ------------------------------------------------------------------------

_PORTS = set()
_PORTS_LOCK = threading.Lock()


def free_port():
    with _PORTS_LOCK:
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _PORTS:
                _PORTS.add(port)
                return port
    raise RuntimeError("no free port")


def http(method, port, path, body=None, headers=None, timeout=10):
    """(status, text); status 0 when nothing answers. Only ever 127.0.0.1."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError):
        return 0, ""


def wait_status(port, path, want, seconds):
    """The status of GET path once it is `want`, or once it is one that waiting will not change
    (anything but no answer yet or 503 while the engine loads), or when time is up."""
    deadline = time.monotonic() + seconds
    status = 0
    while time.monotonic() < deadline:
        status, _ = http("GET", port, path, timeout=3)
        if status == want or status not in (0, 503):
            return status
        time.sleep(0.1)
    return status


class Proc:
    """A child in its own process group, its output in a file; stopped for sure on exit."""

    def __init__(self, argv, env, log_dir, name):
        self.log = Path(log_dir) / f"{name}.log"
        self.out = open(self.log, "wb")
        self.p = subprocess.Popen(argv, env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)

    def term(self, timeout):
        """SIGTERM to the process itself (as the kubelet does to PID 1); its exit code or None."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait(5)
        try:
            os.killpg(self.p.pid, signal.SIGKILL)  # anything the child left in its group
        except (ProcessLookupError, PermissionError):
            pass
        self.out.close()

    def tail(self, lines=25):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def base_env():
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["RUST_LOG"] = "info"
    env["NO_COLOR"] = "1"
    return env


def scoring_request(kind, path=None):
    if kind == "embeddings":
        return (path or "/embeddings") + f"?api-version={MI_API_VERSION}", EMBED_BODY
    return (path or "/chat/completions") + f"?api-version={MI_API_VERSION}", CHAT_BODY


def run_engine_image(launch, required_metrics, log_dir):
    """Start the image's entrypoint as the manifest would (its environment, its arguments, none on
    Azure ML), with a fake engine, and check what the platform relies on. Returns problems."""
    script, stage = entrypoint_script(launch.target)
    port, engine_port = free_port(), free_port()
    env = base_env()
    env.update(stage["env"])
    env.update(launch.env)
    env.update({
        "AOP_PORT": str(port),  # instead of 80, which needs root and may be taken
        "ENGINE_PORT": str(engine_port),
        "ENGINE_CMD": f"{sys.executable} {FAKE_ENGINE}",
        "PROXY_BIN": str(BIN),
        "PROXY_USER": "root",  # no setpriv switch to `nobody`, who cannot read the build tree
        "ENGINE_LDCONFIG": "0",  # never rebuild this machine's linker cache
        "FAKE_KIND": launch.kind,
    })
    metrics_port = None
    if "AOP_METRICS_PORT" in env:
        metrics_port = free_port()
        env["AOP_METRICS_PORT"] = str(metrics_port)
    args = launch.args if launch.args is not None else (stage.get("cmd") or [])
    name = re.sub(r"[^A-Za-z0-9]+", "-", launch.where)[-60:]
    proc = Proc([str(script), *args], env, log_dir, name)
    problems = []
    try:
        problems += live_probe_checks(launch, port, metrics_port, required_metrics, keyed=bool(env.get("AOP_API_KEYS")))
        code = proc.term(timeout=20)
        if code != 0:
            problems.append(f"{launch.where}: after SIGTERM the container exited with {code} instead of 0")
    finally:
        proc.kill()
    if problems:
        problems.append(f"--- {rel(proc.log)}:\n{proc.tail()}")
    return problems


def live_probe_checks(launch, port, metrics_port, required_metrics, keyed):
    problems = []
    headers = {"api-key": TEST_KEY} if keyed else {}
    live_path = launch.probes["liveness"][0]
    status = wait_status(port, live_path, 200, 20)
    if status != 200:
        problems.append(f"{launch.where}: liveness {live_path} answered {status or 'nothing'}, not 200")
        return problems
    for name in ("readiness", "startup"):
        if name in launch.probes:
            path = launch.probes[name][0]
            status = wait_status(port, path, 200, 20)
            if status != 200:
                problems.append(f"{launch.where}: {name} {path} answered {status}, not 200, with the engine up")
    # /ready exists even where readiness uses /health (the proxy-only image).
    status = wait_status(port, "/ready", 200, 20)
    if status != 200:
        problems.append(f"{launch.where}: /ready answered {status} with every engine up")
    if metrics_port:
        status, text = http("GET", metrics_port, "/metrics")
    else:
        status, text = http("GET", port, "/metrics", headers=headers)
    if status != 200:
        problems.append(f"{launch.where}: /metrics answered {status}")
    else:
        names = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
        for metric in sorted(required_metrics):
            if metric not in names:
                problems.append(f"{launch.where}: /metrics has no series {metric}")
    if launch.target:
        path, body = scoring_request(launch.kind, launch.scoring)
        status, text = http("POST", port, path, body, headers)
        if status != 200:
            problems.append(f"{launch.where}: POST {path} answered {status}: {text[:300]}")
        # The deployment name the docs give AzureOpenAI clients.
        alias = launch.env.get("AOP_MODEL_NAME")
        if alias:
            route = "embeddings" if launch.kind == "embeddings" else "chat/completions"
            path = f"/openai/deployments/{alias}/{route}?api-version={AOAI_API_VERSION}"
            status, text = http("POST", port, path, body, headers)
            if status != 200:
                problems.append(f"{launch.where}: POST {path} answered {status}: {text[:300]}")
    return problems


def run_proxy_only(launch, required_metrics, log_dir):
    """The proxy-only image: --check-config on the mounted file as it is, then the proxy on a copy
    whose engines are fake ones on loopback: probes, metrics, every deployment of the file, one
    engine kind down, SIGTERM."""
    problems = []
    config_path = launch.arg_value("--config") or launch.env.get("AOP_CONFIG")
    config_text = launch.config_files[config_path]
    tmp = Path(log_dir)
    original = tmp / "proxy.toml"
    original.write_text(config_text)
    env = base_env()
    env.update(launch.stage["env"])
    env.update(launch.env)

    def argv_with(config_file, port=None, metrics_port=None):
        argv, args = [str(BIN)], list(launch.args or [])
        i = 0
        while i < len(args):
            a = args[i]
            value = {"--config": str(config_file), "--port": port, "--metrics-port": metrics_port}.get(a)
            if value is not None and i + 1 < len(args):
                argv += [a, str(value)]
                i += 2
                continue
            argv.append(a)
            i += 1
        return argv

    check = subprocess.run(argv_with(original) + ["--check-config"], env=env, capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        problems.append(f"{launch.where}: --check-config on the mounted {config_path} failed "
                        f"({check.returncode}): {check.stderr.strip() or check.stdout.strip()}")
        return problems
    config = tomllib.loads(config_text)
    fakes, urls = [], {}
    try:
        for upstream in config.get("upstreams", []):
            kind = "embeddings" if upstream.get("engine") == "tei" else "chat"
            model = next((d.get("model", d["name"]) for d in config.get("deployments", [])
                          if d.get("upstream") == upstream["name"]), "fake/model")
            for url in ([upstream["url"]] if "url" in upstream else []) + list(upstream.get("replicas", [])):
                fake_port = free_port()
                fake_env = dict(base_env(), FAKE_KIND=kind, FAKE_MODEL=model)
                fakes.append((upstream["name"], Proc([sys.executable, str(FAKE_ENGINE), "--port", str(fake_port)],
                                                     fake_env, log_dir, f"fake-{upstream['name']}-{fake_port}")))
                urls[url] = f"http://127.0.0.1:{fake_port}"
        local = config_text
        for url, replacement in urls.items():
            local = local.replace(f'"{url}"', f'"{replacement}"')
        local_file = tmp / "proxy-local.toml"
        local_file.write_text(local)
        port, metrics_port = free_port(), free_port()
        proc = Proc(argv_with(local_file, port, metrics_port), env, log_dir, "proxy-only")
        try:
            problems += live_probe_checks(launch, port, metrics_port, required_metrics, keyed=True)
            headers = {"api-key": TEST_KEY}
            kinds = {u["name"]: ("embeddings" if u.get("engine") == "tei" else "chat") for u in config["upstreams"]}

            def ask(deployment):
                kind = kinds[deployment["upstream"]]
                route = "embeddings" if kind == "embeddings" else "chat/completions"
                body = EMBED_BODY if kind == "embeddings" else CHAT_BODY
                return http("POST", port, f"/openai/deployments/{deployment['name']}/{route}"
                            f"?api-version={AOAI_API_VERSION}", body, headers)

            for d in config.get("deployments", []):
                status, text = ask(d)
                if status != 200:
                    problems.append(f"{launch.where}: deployment {d['name']} of proxy.toml answered {status}: {text[:300]}")
            # One engine kind down: the others still answer, /health stays 200 (what readiness uses
            # here) while /ready turns 503 (why it does not).
            if len(kinds) > 1 and not problems:
                down = config["upstreams"][-1]["name"]
                for name, fake in fakes:
                    if name == down:
                        fake.kill()
                for d in config.get("deployments", []):
                    status, text = ask(d)
                    if d["upstream"] == down and not 500 <= status < 600:
                        problems.append(f"{launch.where}: with upstream {down} down, {d['name']} answered {status}, not 5xx")
                    if d["upstream"] != down and status != 200:
                        problems.append(f"{launch.where}: with upstream {down} down, {d['name']} answered {status}, not 200")
                if http("GET", port, launch.probes["readiness"][0])[0] != 200:
                    problems.append(f"{launch.where}: with one upstream down the readiness probe fails: "
                                    "every proxy pod would leave the Service")
                if http("GET", port, "/ready")[0] != 503:
                    problems.append(f"{launch.where}: /ready no longer turns 503 when an upstream is down; "
                                    "readiness could use /ready again (see deployment.yaml)")
            code = proc.term(timeout=20)
            if code != 0:
                problems.append(f"{launch.where}: after SIGTERM the proxy exited with {code} instead of 0")
        finally:
            proc.kill()
        if problems:
            problems.append(f"--- {rel(proc.log)}:\n{proc.tail()}")
    finally:
        for _, fake in fakes:
            fake.kill()
    return problems


# ---- the tests ---------------------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def all_yaml_files():
    return sorted(p for ext in ("*.yaml", "*.yml") for p in DEPLOY.rglob(ext))


@test
def yamllint_deploy():
    from yamllint import linter
    from yamllint.config import YamlLintConfig
    conf = YamlLintConfig(file=str(HERE / "yamllint.yaml"))
    problems = []
    files = all_yaml_files()
    if not files:
        return ["no YAML under deploy/"]
    for path in files:
        for p in linter.run(path.read_text(), conf, str(path)):
            problems.append(f"{rel(path)}:{p.line}:{p.column}: {p.level}: {p.desc} ({p.rule})")
    return problems


@test
def kustomizations_render():
    problems = []
    dirs = kustomization_dirs()
    if len(dirs) < 2:
        problems.append(f"expected the engine-and-proxy and proxy-fleet kustomizations, found {[rel(d) for d in dirs]}")
    for d in dirs:
        try:
            objects = rendered(d)
        except Exception as e:  # noqa: BLE001
            problems.append(f"{rel(d)}: {type(e).__name__}: {e}")
            continue
        keys = [key_of(o) for o in objects]
        if len(keys) != len(set(keys)):
            problems.append(f"{rel(d)}: duplicate objects {keys}")
    return problems


@test
def kustomizations_match_kubectl():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise Skip("kubectl is not installed: the renderer is not compared with kustomize")
    problems = []
    for d in kustomization_dirs():
        out = subprocess.run([kubectl, "kustomize", str(d)], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            problems.append(f"kubectl kustomize {rel(d)}: {out.stderr.strip()}")
            continue
        theirs = {key_of(o): o for o in yaml.safe_load_all(out.stdout) if o}
        ours = {key_of(o): o for o in rendered(d)}
        if set(theirs) != set(ours):
            problems.append(f"{rel(d)}: kubectl makes {sorted(map(str, theirs))}, tests/deploy {sorted(map(str, ours))}")
            continue
        for k in ours:
            if ours[k] != theirs[k]:
                problems.append(f"{rel(d)}: {k} differs from kubectl's:\n  ours   {json.dumps(ours[k], sort_keys=True)}"
                                f"\n  kubectl {json.dumps(theirs[k], sort_keys=True)}")
    return problems


@test
def kubernetes_schemas():
    import kubernetes_validate
    problems = []
    objects = []
    for d in kustomization_dirs():
        objects += [(rel(d), o) for o in rendered(d)]
    for path in K8S.rglob("secret.example.yaml"):
        objects += [(rel(path), o) for o in load_docs(path)]
    if not objects:
        return ["no Kubernetes objects found"]
    for version in K8S_VERSIONS:
        for where, obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{where}: {key_of(obj)} against Kubernetes {version}: {e.message} at "
                                f"{'/'.join(map(str, e.path))}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
                problems.append(f"{where}: {key_of(obj)}: no schema in Kubernetes {version}: {e}")
    return problems


@test
def kubernetes_references():
    problems = []
    for d in kustomization_dirs():
        problems += check_k8s_render(d)
    # The PodMonitor (a CRD, outside the kustomizations) must find the pods' metrics port.
    pods = [(pod_spec(o), o["spec"]["template"]["metadata"].get("labels") or {})
            for d in kustomization_dirs() for o in rendered(d) if o["kind"] == "Deployment"]
    for path in K8S.rglob("podmonitor.yaml"):
        for pm in load_docs(path):
            sel = pm["spec"]["selector"].get("matchLabels") or {}
            hits = [spec for spec, labels in pods if all(labels.get(k) == v for k, v in sel.items())]
            if not hits:
                problems.append(f"{rel(path)}: selects no pod")
            for ep in pm["spec"]["podMetricsEndpoints"]:
                for spec in hits:
                    names = {p.get("name") for c in spec["containers"] for p in c.get("ports") or []}
                    if ep["port"] not in names:
                        problems.append(f"{rel(path)}: port {ep['port']} is not a container port of the pods it selects")
                if ep.get("path", "/metrics") != "/metrics":
                    problems.append(f"{rel(path)}: scrapes {ep.get('path')}, not /metrics")
    # prometheus-adapter must serve every Pods metric an HPA asks for.
    served = set()
    for path in K8S.rglob("prometheus-adapter-values.yaml"):
        for rule in (load_docs(path)[0].get("rules") or {}).get("custom") or []:
            served.add((rule.get("name") or {}).get("as") or rule["seriesQuery"].split("{")[0])
    for deployment, names in hpa_metrics().items():
        for name in names - served:
            problems.append(f"HPA of {deployment} scales on {name}, which prometheus-adapter-values.yaml does not serve")
    return problems


@test
def kubernetes_containers_match_proxy():
    problems = []
    seen = set()
    for d in kustomization_dirs():
        for launch in k8s_launches(d):
            for p in check_launch(launch):
                if p not in seen:
                    seen.add(p)
                    problems.append(p)
    return problems


@test
def azureml_schema():
    try:
        endpoints, deployments = aml_loaded()
    except Exception as e:  # noqa: BLE001 (azure-ai-ml's ValidationError and friends)
        return [f"azure-ai-ml rejects deploy/azureml: {e}"]
    problems = []
    if not endpoints or not deployments:
        problems.append("deploy/azureml needs endpoint-*.yml and deployment-*.yml files")
    for e in endpoints:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]", e.name or ""):
            problems.append(f"endpoint {e.name}: a name is 3-32 letters, digits and hyphens, starting with a letter")
        if e.auth_mode not in ("key", "aml_token", "aad_token"):
            problems.append(f"endpoint {e.name}: auth_mode {e.auth_mode} (the proxy relies on Azure ML's authentication)")
    return problems


@test
def azureml_rules():
    endpoints, deployments = aml_loaded()
    names = {e.name for e in endpoints}
    problems = []
    for d in deployments:
        problems += check_aml_deployment(d, names)
    return problems


def live_launches():
    launches = []
    seen = set()
    for d in kustomization_dirs():
        for launch in k8s_launches(d):
            if launch.deployment not in seen:
                seen.add(launch.deployment)
                launches.append(launch)
    return launches


BASE_METRICS = {"azure_openai_proxy_requests_in_flight", "azure_openai_proxy_requests_queued"}


def make_live_test(kind, index):
    def live():
        launches = [launch for launch in live_launches() if launch.is_proxy_only == (kind == "proxy-only")]
        if kind == "azureml":
            launches = [aml_launch(d) for d in aml_loaded()[1]]
        if index >= len(launches):
            raise Skip("no such container")
        launch = launches[index]
        required = BASE_METRICS | hpa_metrics().get(launch.deployment, set())
        with tempfile.TemporaryDirectory(prefix="aop-deploy-") as tmp:
            if launch.is_proxy_only:
                return run_proxy_only(launch, required, tmp)
            return run_engine_image(launch, required, tmp)
    return live


def register_live_tests():
    count = {"k8s-engine": 0, "proxy-only": 0, "azureml": 0}
    for launch in live_launches():
        kind = "proxy-only" if launch.is_proxy_only else "k8s-engine"
        fn = make_live_test(kind, count[kind])
        fn.__name__ = f"live_{kind.replace('-', '_')}_{launch.deployment.replace('-', '_')}"
        count[kind] += 1
        TESTS.append(fn)
    for path in aml_files()[1]:
        fn = make_live_test("azureml", count["azureml"])
        fn.__name__ = f"live_azureml_{path.stem.replace('-', '_')}"
        count["azureml"] += 1
        TESTS.append(fn)


@test
def checks_catch_drift():
    """Each kind of staleness the checks exist for, injected into a copy, must be reported."""
    problems = []
    fleet = next(launch for launch in live_launches() if launch.is_proxy_only)
    engine = next(launch for launch in live_launches() if not launch.is_proxy_only)

    def expect(label, found, needle):
        if not any(needle in p for p in found):
            problems.append(f"drift not caught: {label} (no problem mentioning {needle!r} in {found})")

    m = copy.deepcopy(engine)
    m.env["AOP_MAX_CONCURENT_REQUESTS"] = "8"
    expect("a misspelt AOP_* variable", check_launch(m), "AOP_MAX_CONCURENT_REQUESTS")
    m = copy.deepcopy(engine)
    m.env["ENGINE_ARGZ"] = "--x"
    expect("a variable no entrypoint reads", check_launch(m), "ENGINE_ARGZ")
    m = copy.deepcopy(fleet)
    m.args = m.args + ["--metrics-prot", "1"]
    expect("a flag the binary lacks", check_launch(m), "--metrics-prot")
    m = copy.deepcopy(fleet)
    m.port = 8081
    expect("a container port that is not the proxy's", check_launch(m), "8081")
    m = copy.deepcopy(engine)
    m.probes["liveness"] = ("/healthz", m.probes["liveness"][1])
    expect("a liveness path that is not /health", check_launch(m), "/healthz")
    m = copy.deepcopy(engine)
    m.grace = 60
    expect("a grace period shorter than the drain", check_launch(m), "terminationGracePeriodSeconds")
    m = copy.deepcopy(engine)
    m.env["AOP_MAX_CONCURRENT_REQUESTS"] = "1000"
    expect("a proxy limit above the engine's batch", check_launch(m), "exceeds the engine")
    _, deployments = aml_loaded()
    names = {e.name for e in aml_loaded()[0]}
    d = copy.deepcopy(deployments[0])
    d.request_settings.request_timeout_ms = 200_000
    expect("request_timeout_ms above Azure ML's maximum", check_aml_deployment(d, names), "maximum")
    d = copy.deepcopy(deployments[0])
    d.request_settings.max_concurrent_requests_per_instance = 7
    expect("Azure ML concurrency unequal to the proxy's", check_aml_deployment(d, names), "must equal")
    d = copy.deepcopy(deployments[0])
    d.environment_variables = dict(d.environment_variables, AOP_UPSTREAM_HEADERS_TIMEOUT="600")
    expect("proxy timeouts beyond Azure ML's", check_aml_deployment(d, names), "must be below")
    d = copy.deepcopy(deployments[0])
    d.environment_variables = {k: v for k, v in d.environment_variables.items() if k != "AOP_ALLOW_UNAUTHENTICATED"}
    expect("an implicit open endpoint", check_aml_deployment(d, names), "opted into explicitly")
    # A probe path the binary does not serve fails the live check.
    with tempfile.TemporaryDirectory(prefix="aop-deploy-") as tmp:
        port = free_port()
        proc = Proc([str(BIN), "--port", str(port), "--upstream-url", "http://127.0.0.1:9"], base_env(), tmp, "drift")
        try:
            m = copy.deepcopy(engine)
            m.probes = {"liveness": ("/healthz", m.port), "readiness": ("/ready", m.port)}
            found = live_probe_checks(m, port, None, set(), keyed=False)
            expect("a probe path the binary lacks (live)", found, "/healthz")
        finally:
            proc.kill()
    return problems


@test
def proxy_only_dockerfile_lint():
    hadolint = shutil.which("hadolint")
    cached = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "azure-openai-proxy/lint-venv/bin/hadolint"
    if not hadolint and cached.is_file():
        hadolint = str(cached)
    if not hadolint:
        raise Skip("hadolint is not installed (tests/entrypoints/run.sh installs it)")
    problems = []
    for path in K8S.rglob("Dockerfile"):
        out = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            problems.append(f"{rel(path)}:\n{out.stdout.strip()}{out.stderr.strip()}")
    return problems


# ---- runner ------------------------------------------------------------------------------------

def run_one(fn):
    started = time.monotonic()
    try:
        problems = fn() or []
        status = "failed" if problems else "passed"
        detail = problems
    except Skip as e:
        status, detail = "skipped", [str(e)]
    except Exception:  # noqa: BLE001 (a failed test, whatever it raised)
        status, detail = "failed", [traceback.format_exc()]
    return fn.__name__, status, detail, time.monotonic() - started


def main():
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", action="append", default=[], help="run only tests whose name contains this")
    parser.add_argument("-j", type=int, default=4, help="tests at once (default 4)")
    parser.add_argument("-v", action="store_true", help="print passing tests too")
    opts = parser.parse_args()
    VERBOSE = opts.v
    if not BIN.is_file():
        print(f"no proxy binary at {BIN}: run `cargo build` or set AOP_PROXY_BIN", file=sys.stderr)
        return 2
    try:
        register_live_tests()
    except Exception:  # noqa: BLE001
        print("could not read the manifests to plan the live tests:\n" + traceback.format_exc())
        print("0 passed, 1 failed")
        return 1
    tests = [t for t in TESTS if not opts.k or any(k in t.__name__ for k in opts.k)]
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.j)) as pool:
        for name, status, detail, seconds in pool.map(run_one, tests):
            counts[status] += 1
            if status == "failed":
                print(f"FAIL {name} ({seconds:.1f} s)")
                for line in detail:
                    print("  " + line.replace("\n", "\n  "))
            elif status == "skipped":
                print(f"skip {name}: {detail[0]}")
            elif VERBOSE:
                print(f"ok   {name} ({seconds:.1f} s)")
    print(f"[deploy] {len(tests)} tests in {time.monotonic() - started:.1f} s")
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] or not tests else 0


if __name__ == "__main__":
    sys.exit(main())
