"""Runs litellm calls for test_frameworks.py inside litellm's own venv (litellm_venv.py says why).

One JSON request a line on stdin: {"op": "completion" | "embedding", "kwargs": {...}}; with
kwargs["stream"] the completion's chunks are collected. One JSON answer a line on the original
stdout: {"ok": true, "result": <litellm's response, model_dump()'d>} or {"ok": false, "error":
{"type", "mro", "status_code", "message"}} with the exception litellm raised. Anything litellm
prints itself goes to stderr.
"""

import json
import os
import sys


def describe(exc):
    return {
        "type": type(exc).__name__,
        "mro": [f"{c.__module__}.{c.__name__}" for c in type(exc).__mro__],
        "status_code": getattr(exc, "status_code", None),
        "message": str(exc)[:2000],
    }


def main():
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import litellm

    litellm.suppress_debug_info = True
    answers.write(json.dumps({"ok": True, "result": {"litellm": litellm.__name__}}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        kwargs = request["kwargs"]
        try:
            if request["op"] == "completion":
                response = litellm.completion(**kwargs)
                if kwargs.get("stream"):
                    result = [chunk.model_dump() for chunk in response]
                else:
                    result = response.model_dump()
            elif request["op"] == "embedding":
                result = litellm.embedding(**kwargs).model_dump()
            else:
                raise ValueError(f"unknown op {request['op']!r}")
            answer = {"ok": True, "result": result}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the test
            answer = {"ok": False, "error": describe(exc)}
        answers.write(json.dumps(answer, default=repr) + "\n")


if __name__ == "__main__":
    main()
