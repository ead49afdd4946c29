"""Makes (or reuses) litellm's own venv beside the conformance venv.

litellm cannot share the conformance venv: every litellm this registry can install needs
openai<3, and the conformance venv pins openai 3.x (requirements-litellm.txt says why). The venv is
rebuilt only when requirements-litellm.txt changes (its hash is kept beside it) or it is broken.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-litellm.txt"


def _run(argv, log):
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          text=True, timeout=900)
    log.write(f"$ {' '.join(map(str, argv))}\n{done.stdout}\n")
    return done.returncode == 0, done.stdout


def ensure(cache_dir, log_path):
    """Returns (python path, None) or (None, why it could not be made)."""
    venv = Path(os.environ.get("AOP_LITELLM_VENV") or Path(cache_dir) / "conformance-litellm-venv")
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    env_ok = python.is_file() and stamp.is_file() and stamp.read_text().strip() == want
    if env_ok and subprocess.call([str(python), "-c", "import litellm, mcp"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env={**os.environ, **WORKER_ENV}) == 0:
        return python, None
    print(f"[frameworks] creating {venv} (litellm; about half a minute)", file=sys.stderr, flush=True)
    with open(log_path, "w") as log:
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        base = os.environ.get("AOP_PYTHON") or "python3"
        steps = [
            [base, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip"],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        ]
        for argv in steps:
            ok, out = _run(argv, log)
            if not ok:
                return None, f"could not make litellm's venv ({' '.join(argv[-3:])}): {out[-400:]}"
    stamp.write_text(want + "\n")
    return python, None


# litellm fetches its model cost map from the network at import unless told to use its own copy.
WORKER_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
